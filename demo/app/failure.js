// Failures in words: the status and the message of the JSON envelope that
// authkit (and the demo's sign-in) answer with,
// {"error": {"status", "code", "message", "retryable"}}.

// describeFailure reads a failed response and says what went wrong.
export async function describeFailure(res, what) {
  let message = "";
  try {
    const body = await res.json();
    message = body?.error?.message || "";
  } catch {
    // Not JSON: the status says enough.
  }
  const status = `${res.status}${res.statusText ? " " + res.statusText : ""}`;
  return `${what} failed: ${status}${message ? ": " + message : ""}`;
}

// envelope returns the error envelope of a failed response, or null.
export async function envelope(res) {
  try {
    return (await res.clone().json())?.error || null;
  } catch {
    return null;
  }
}
