// The baseline: the token endpoint Pica's docs tell apps to write, with the
// official SDK behind a minimal Node HTTP server.
// Usage: node sdk-server.cjs <port>=<pica base URL> ...   (secret in PICA_SECRET_KEY)
const http = require("http");
const { AuthKitToken } = require("@picahq/authkit-token");

for (const arg of process.argv.slice(2)) {
  const [port, baseUrl] = arg.split("=");
  const authKitToken = new AuthKitToken(process.env.PICA_SECRET_KEY, { baseUrl });
  http
    .createServer(async (req, res) => {
      const identity = req.headers["x-user"];
      const token = await authKitToken.create({ identity, identityType: "user" });
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify(token));
    })
    .listen(Number(port), "127.0.0.1");
}
console.error("ready");
