// The account: profile, change password (by emailed code, the only way the API offers), log out here or everywhere.
import { useEffect, useState } from "preact/hooks";
import { get, logout, logoutEverywhere, publicPost } from "../api.js";
import { navigate } from "../router.jsx";
import { Notice } from "../ui.jsx";

export function Account() {
  const [profile, setProfile] = useState(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const [asking, setAsking] = useState(false);
  const [ending, setEnding] = useState(false);
  const endEverywhere = async () => {
    setEnding(true);
    try {
      await logoutEverywhere();
      navigate("/login", { replace: true });
    } catch (e) { setError(e.message); setEnding(false); }
  };
  useEffect(() => { get("/v1/me").then(setProfile, (e) => setError(e.message)); }, []);
  const changePassword = async () => {
    setBusy(true);
    try {
      await publicPost("/v1/auth/forgot-password", { username: profile.username });
      navigate(`/reset?username=${encodeURIComponent(profile.username)}`);
    } catch (e) { setError(e.message); setBusy(false); }
  };
  return (
    <section class="card">
      <h1>Your account</h1>
      <Notice>{error}</Notice>
      {profile && (
        <dl class="facts">
          <dt>Username</dt><dd>{profile.username}</dd>
          <dt>Name</dt><dd>{[profile.given_name, profile.family_name].filter(Boolean).join(" ")}</dd>
          <dt>Email</dt><dd>{profile.email}</dd>
          {profile.signed_up_at && <><dt>Member since</dt><dd>{new Date(profile.signed_up_at).toLocaleDateString()}</dd></>}
        </dl>
      )}
      <h2>Password</h2>
      <p class="muted">We email you a code; you then choose the new password.</p>
      <button type="button" class="secondary" disabled={!profile || busy} onClick={changePassword}>Change password</button>
      <h2>Session</h2>
      <button type="button" class="secondary" onClick={() => logout().finally(() => navigate("/login", { replace: true }))}>
        Log out
      </button>
      <h3>Other devices and browsers</h3>
      {!asking && <button type="button" class="danger" onClick={() => setAsking(true)}>Sign out everywhere…</button>}
      {asking && (
        <div class="confirm" role="group" aria-label="Confirm sign out everywhere">
          <p>Every session of yours ends, on every browser and app, this one too. You then log in again.</p>
          <button type="button" class="danger" disabled={ending} onClick={endEverywhere}>
            {ending ? "Signing out everywhere…" : "Yes, sign out everywhere"}
          </button>
          <button type="button" class="secondary" disabled={ending} onClick={() => setAsking(false)}>Cancel</button>
        </div>
      )}
    </section>
  );
}
