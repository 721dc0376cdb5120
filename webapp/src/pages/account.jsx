// The account: profile, change password (by emailed code, the only way the API offers), log out.
import { useEffect, useState } from "preact/hooks";
import { get, logout, publicPost } from "../api.js";
import { navigate } from "../router.jsx";
import { Notice } from "../ui.jsx";

export function Account() {
  const [profile, setProfile] = useState(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
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
    </section>
  );
}
