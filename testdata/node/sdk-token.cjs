// Prints what the official Node SDK returns for one identity, pointed at baseUrl.
// Usage: node sdk-token.cjs <baseUrl> <identity> <identityType>   (secret on stdin)
const { AuthKitToken } = require("@picahq/authkit-token");

async function main() {
  const [baseUrl, identity, identityType] = process.argv.slice(2);
  const secret = require("fs").readFileSync(0, "utf8").trim();
  const token = await new AuthKitToken(secret, { baseUrl }).create({ identity, identityType });
  process.stdout.write(JSON.stringify(token));
}
main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
