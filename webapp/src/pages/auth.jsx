// Sign up, confirm, log in, forgot and reset password.
import { useState } from "preact/hooks";
import { login, publicPost } from "../api.js";
import { Link, navigate } from "../router.jsx";
import { Field, Form, Notice } from "../ui.jsx";

const text = (data, name) => String(data.get(name) || "").trim();

function Card({ title, children }) {
  return <section class="card narrow"><h1>{title}</h1>{children}</section>;
}

export function Login({ query }) {
  const notice = query.get("notice");
  return (
    <Card title="Log in">
      <Notice kind="info">{notice}</Notice>
      <Form submit="Log in" action={async (data) => {
        await login(text(data, "username"), String(data.get("password")));
        navigate("/devices", { replace: true });
      }}>
        <Field label="Username" name="username" autocomplete="username" required defaultValue={query.get("username") || ""} />
        <Field label="Password" name="password" type="password" autocomplete="current-password" required />
      </Form>
      <p class="links"><Link href="/signup">Create an account</Link> <Link href="/forgot">Forgot your password?</Link></p>
    </Card>
  );
}

export function SignUp() {
  return (
    <Card title="Create your account">
      <Form submit="Sign up" action={async (data) => {
        const username = text(data, "username");
        await publicPost("/v1/auth/signup", {
          username, password: String(data.get("password")), email: text(data, "email"),
          given_name: text(data, "given_name"), family_name: text(data, "family_name") });
        navigate(`/confirm?username=${encodeURIComponent(username)}`);
      }}>
        <Field label="Username" name="username" autocomplete="username" required maxlength="64" />
        <Field label="Email" name="email" type="email" autocomplete="email" required maxlength="254" />
        <Field label="Given name" name="given_name" autocomplete="given-name" required maxlength="128" />
        <Field label="Family name" name="family_name" autocomplete="family-name" required maxlength="128" />
        <Field label="Password" name="password" type="password" autocomplete="new-password" required minlength="8"
               maxlength="256" hint="At least 8 characters." />
      </Form>
      <p class="links"><Link href="/login">I have an account</Link></p>
    </Card>
  );
}

export function Confirm({ query }) {
  const [sent, setSent] = useState("");
  const [username, setUsername] = useState(query.get("username") || "");
  const resend = async () => {
    setSent("");
    try {
      await publicPost("/v1/auth/resend-code", { username });
      setSent("If the account waits for confirmation, a new code is on its way.");
    } catch (error) { setSent(error.message); }
  };
  return (
    <Card title="Confirm your account">
      <p>We emailed you a six-digit code. Enter it here.</p>
      <Form submit="Confirm" action={async (data) => {
        await publicPost("/v1/auth/confirm", { username: text(data, "username"), code: text(data, "code") });
        navigate(`/login?username=${encodeURIComponent(text(data, "username"))}&notice=${encodeURIComponent(
          "Your account is confirmed: log in.")}`);
      }}>
        <Field label="Username" name="username" autocomplete="username" required value={username}
               onInput={(e) => setUsername(e.currentTarget.value)} />
        <Field label="Confirmation code" name="code" inputmode="numeric" autocomplete="one-time-code" required
               maxlength="16" />
      </Form>
      <button type="button" class="secondary" onClick={resend} disabled={!username}>Send a new code</button>
      <Notice kind="info">{sent}</Notice>
    </Card>
  );
}

export function Forgot() {
  return (
    <Card title="Forgot your password?">
      <p>Give your username; we email a code to the address of the account.</p>
      <Form submit="Email me a code" action={async (data) => {
        const username = text(data, "username");
        await publicPost("/v1/auth/forgot-password", { username });
        navigate(`/reset?username=${encodeURIComponent(username)}`);
      }}>
        <Field label="Username" name="username" autocomplete="username" required />
      </Form>
      <p class="links"><Link href="/login">Back to log in</Link></p>
    </Card>
  );
}

export function Reset({ query }) {
  return (
    <Card title="Choose a new password">
      <p>If the account exists, we emailed it a code.</p>
      <Form submit="Set the new password" action={async (data) => {
        const username = text(data, "username");
        await publicPost("/v1/auth/reset-password", { username, code: text(data, "code"),
                                                      password: String(data.get("password")) });
        navigate(`/login?username=${encodeURIComponent(username)}&notice=${encodeURIComponent(
          "Your password is changed: log in with the new one.")}`);
      }}>
        <Field label="Username" name="username" autocomplete="username" required defaultValue={query.get("username") || ""} />
        <Field label="Code from the email" name="code" inputmode="numeric" autocomplete="one-time-code" required />
        <Field label="New password" name="password" type="password" autocomplete="new-password" required
               minlength="8" maxlength="256" hint="At least 8 characters." />
      </Form>
    </Card>
  );
}
