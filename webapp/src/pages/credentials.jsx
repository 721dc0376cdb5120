// The credentials of a device just registered or reissued: shown once, downloadable, with the commands
// that bring a simulator online with them.
import { recall, fileName, simulatorCommands } from "../credentials.js";
import { Link } from "../router.jsx";
import { download } from "../ui.jsx";

function Pem({ label, value }) {
  const id = `pem-${label.replace(/\W+/g, "-").toLowerCase()}`;
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <textarea id={id} readonly rows="6" spellcheck={false} value={value} />
    </div>
  );
}

export function Credentials({ name }) {
  const credentials = recall(name);
  const back = <Link href={`/devices/${encodeURIComponent(name)}`}>Go to the device page</Link>;
  if (!credentials) {
    return (
      <section class="card">
        <h1>Credentials of {name}</h1>
        <p>The private key is shown only once, right after registration or a certificate reissue. Reissue the
          certificate on the device page to get a new key.</p>
        <p>{back}</p>
      </section>
    );
  }
  const file = fileName(name);
  return (
    <section class="card">
      <h1>Credentials of {name}</h1>
      <p class="notice warning" role="status"><strong>Save them now.</strong> This is the only time the private key
        is shown: the platform does not keep it. Anyone with the key can act as this device.</p>
      <dl class="facts">
        <dt>Device id</dt><dd><code>{credentials.device_id}</code></dd>
        <dt>Broker</dt><dd><code>mqtts://{credentials.host}:{credentials.mqtt_port}</code> · <code>amqps://{credentials.host}:{credentials.amqp_port}</code></dd>
        {credentials.certificate_info && <><dt>Certificate valid until</dt>
          <dd>{new Date(credentials.certificate_info.not_after).toLocaleDateString()}</dd></>}
      </dl>
      <button type="button" onClick={() => download(file, JSON.stringify(credentials, null, 2))}>
        Download {file}
      </button>
      <h2>Run a simulator with them</h2>
      <p>From the iotcloud source folder, with the file saved there:</p>
      {simulatorCommands(name).map((command) => <pre key={command}><code>{command.replace(`${name}.json`, file)}</code></pre>)}
      <p>Or start the emulator on the device page: it runs the same simulator on the server.</p>
      <Pem label="CA certificate" value={credentials.ca} />
      <Pem label="Device certificate" value={credentials.certificate} />
      {credentials.private_key && <Pem label="Private key (shown once)" value={credentials.private_key} />}
      <p>{back}</p>
    </section>
  );
}
