#!/usr/bin/env node
'use strict';
/*
 * libpyiotcloud-compatible device simulator over MQTT(S) with the `mqtt` npm package.
 *
 *   node simulators/node/device_simulator.js --credentials device.json
 *
 * Same behaviour as simulators/device.py (device.js holds it) (see simulators/README.md): MQTT 3.1.1,
 * clientId = device id, clean session off, subscribe <id>/# QoS 1, reply on
 * server/<id>/<api> QoS 1, correlation_id echoed (a repeated one is not run again: a broker
 * node's death can deliver a QoS 1 request twice), replies serialised like Python's
 * json.dumps defaults.  TLS: the broker is verified against "ca" (rejectUnauthorized,
 * hostname checked), the client presents "certificate"/"private_key"; no username.
 */

const fs = require('fs');
const mqtt = require('mqtt');
const { Device, DEFAULT_RECIPIENT, log } = require('./device');

const SAFE_ID = /^[A-Za-z0-9_\-:]{1,128}$/;

const USAGE = `usage: node device_simulator.js --credentials FILE [options]

Simulate one libpyiotcloud device over MQTT 3.1.1 (TLS client cert, clientId = device id): answers <id>/<api> on server/<id>/<api>.

options:
  --credentials, -c FILE          device credentials JSON (see simulators/README.md)
  --device-id, --USE_DEVICE_ID    device id (overrides the file)
  --ca-file, --USE_DEVICE_CA      broker CA certificate file
  --cert-file, --USE_DEVICE_CERT  device certificate file
  --key-file, --USE_DEVICE_PKEY   device private key file
  --host, --USE_HOST              broker host
  --port, --USE_PORT              broker MQTT port
  --notification-recipient WHO    recipient of the write_uart 'Hello World' notification
                                  (several, comma-separated: one trigger each)
  --keepalive SECONDS             MQTT keepalive (default 60)
  --help, -h                      show this help`;

// ---------------------------------------------------------------------------------------
// Command line and credentials.
function parseArgs(argv) {
  const names = {
    '--credentials': 'credentials', '-c': 'credentials',
    '--device-id': 'deviceId', '--USE_DEVICE_ID': 'deviceId',
    '--ca-file': 'caFile', '--USE_DEVICE_CA': 'caFile',
    '--cert-file': 'certFile', '--USE_DEVICE_CERT': 'certFile',
    '--key-file': 'keyFile', '--USE_DEVICE_PKEY': 'keyFile',
    '--host': 'host', '--USE_HOST': 'host',
    '--port': 'port', '--USE_PORT': 'port',
    '--notification-recipient': 'recipient',
    '--keepalive': 'keepalive',
  };
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value;
    if (arg === '--help' || arg === '-h') { console.log(USAGE); process.exit(0); }
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) { value = arg.slice(eq + 1); arg = arg.slice(0, eq); }
    const key = names[arg];
    if (!key) { console.error(`${USAGE}\n\nerror: unknown argument ${arg}`); process.exit(2); }
    if (value === undefined) {
      if (i + 1 >= argv.length) { console.error(`error: ${arg} needs a value`); process.exit(2); }
      value = argv[++i];
    }
    out[key] = value;
  }
  return out;
}

function die(msg) {
  console.error(`error: ${msg}`);
  process.exit(2);
}

function loadCredentials(args) {
  let c = {};
  if (args.credentials) {
    try {
      c = JSON.parse(fs.readFileSync(args.credentials, 'utf-8'));
    } catch (e) {
      die(`cannot load credentials file ${args.credentials}: ${e.message}`);
    }
    if (c === null || typeof c !== 'object' || Array.isArray(c)) die('credentials must be a JSON object');
  } else if (!args.deviceId) {
    die('give --credentials FILE (or --USE_DEVICE_ID with --USE_DEVICE_CA/--USE_DEVICE_CERT/--USE_DEVICE_PKEY)');
  }
  const read = (p) => { try { return fs.readFileSync(p, 'utf-8'); } catch (e) { return die(`cannot read ${p}: ${e.message}`); } };
  const tlsRaw = c.tls === undefined ? true : c.tls;
  const tls = typeof tlsRaw === 'string' ? ['1', 'true', 'yes', 'on'].includes(tlsRaw.trim().toLowerCase()) : Boolean(tlsRaw);
  const creds = {
    deviceId: args.deviceId || c.device_id,
    host: args.host || c.host || '127.0.0.1',
    ca: args.caFile ? read(args.caFile) : c.ca,
    certificate: args.certFile ? read(args.certFile) : c.certificate,
    privateKey: args.keyFile ? read(args.keyFile) : c.private_key,
    tls,
    username: c.username,
    password: c.password,
    recipient: args.recipient || c.notification_recipient || DEFAULT_RECIPIENT,
  };
  creds.port = parseInt(args.port || c.mqtt_port || (tls ? 8883 : 1883), 10);
  if (typeof creds.deviceId !== 'string' || !SAFE_ID.test(creds.deviceId)) {
    die(`device_id must be 1-128 characters of [A-Za-z0-9_-:], got ${JSON.stringify(creds.deviceId)}`);
  }
  if (!(creds.port > 0 && creds.port < 65536)) die(`bad port ${creds.port}`);
  if (tls) {
    const missing = ['ca', 'certificate', 'privateKey'].filter((k) => !creds[k]);
    if (missing.length) die(`TLS needs ${missing.join(', ')} (or set "tls": false for a plain test broker)`);
  }
  return creds;
}

// ---------------------------------------------------------------------------------------
function main() {
  const args = parseArgs(process.argv.slice(2));
  const creds = loadCredentials(args);
  const device = new Device(creds.deviceId, creds.recipient);
  const id = creds.deviceId;

  const options = {
    host: creds.host,
    port: creds.port,
    protocol: creds.tls ? 'mqtts' : 'mqtt',
    protocolVersion: 4, // MQTT 3.1.1 (RabbitMQ 3.10 refuses 5)
    clientId: id,
    clean: false, // persistent session: QoS 1 commands queued while offline arrive on reconnect
    keepalive: parseInt(args.keepalive || '60', 10),
    reconnectPeriod: 0, // reconnects are ours, with exponential backoff (below)
    resubscribe: false, // we subscribe on every 'connect'
    connectTimeout: 10000,
  };
  if (creds.tls) {
    Object.assign(options, {
      ca: creds.ca,
      cert: creds.certificate,
      key: creds.privateKey,
      rejectUnauthorized: true, // verify the broker against the CA, including the host name
      minVersion: 'TLSv1.2',
    });
    // mqtt.js sets servername (SNI and the name checked) to the host unless it is an IP address.
  } else if (creds.username) {
    options.username = creds.username;
    options.password = creds.password;
  }

  log('INFO', `device ${id} -> ${options.protocol}://${creds.host}:${creds.port}`);
  const client = mqtt.connect(options);

  let stopping = false;
  let delay = 1000;
  const maxDelay = 30000;
  let retryTimer = null;

  client.on('connect', (connack) => {
    delay = 1000;
    log('INFO', `${id}: connected to ${creds.host}:${creds.port} (session_present=${connack.sessionPresent ? 'True' : 'False'})`);
    client.subscribe(`${id}/#`, { qos: 1 }, (err, granted) => {
      if (err || !granted || granted.some((g) => g.qos === 128)) {
        log('ERROR', `${id}: subscription to ${id}/# refused: ${err ? err.message : JSON.stringify(granted)}`);
        return;
      }
      log('INFO', `${id}: subscribed to ${id}/# (QoS 1)`);
    });
  });

  client.on('message', (topic, payload) => {
    const api = device.requestApi(topic);
    if (api === null) return;
    let pubs;
    try {
      pubs = device.handle(api, payload);
    } catch (e) {
      log('ERROR', `${id}: error handling ${topic}: ${e.stack || e}`);
      return;
    }
    for (const p of pubs) {
      client.publish(`server/${id}/${p.api}`, p.payload, { qos: 1 });
    }
  });

  client.on('error', (err) => {
    log('WARNING', `${id}: ${err.message}`);
  });

  client.on('close', () => {
    if (stopping || retryTimer) return;
    const jittered = Math.round(delay * (0.8 + 0.4 * Math.random()));
    log('WARNING', `${id}: connection closed; reconnecting in ${(jittered / 1000).toFixed(1)} s`);
    retryTimer = setTimeout(() => {
      retryTimer = null;
      if (!stopping) client.reconnect();
    }, jittered);
    delay = Math.min(maxDelay, delay * 2);
  });

  const stop = (sig) => {
    if (stopping) return;
    stopping = true;
    log('INFO', `${id}: ${sig}, disconnecting`);
    if (retryTimer) clearTimeout(retryTimer);
    setTimeout(() => process.exit(0), 3000).unref();
    client.end(false, {}, () => {
      log('INFO', `${id}: disconnected`);
      process.exit(0);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

if (require.main === module) {
  main();
}

