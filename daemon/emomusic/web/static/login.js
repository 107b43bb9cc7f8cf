// The page's login: the password goes to /api/login once, a session cookie (HttpOnly, SameSite=Strict)
// comes back; the browser is never asked for basic auth, so it never resends credentials to another site.
"use strict";
document.getElementById("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const answer = document.getElementById("login-answer");
  answer.textContent = "checking…";
  try {
    const r = await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ password: document.getElementById("password").value }) });
    if (r.ok) { location.reload(); return; }
    const wait = r.headers.get("Retry-After");
    answer.textContent = `wrong password${wait ? `: too many tries, each answer now waits ${wait} s` : ""}`;
  } catch (e) {
    answer.textContent = "the daemon is not reachable";
  }
});
