#!/usr/bin/env node
'use strict';
/*
 * libpyiotcloud-compatible device simulator over MQTT(S) with the `mqtt` npm package.
 *
 *   node simulators/node/device_simulator.js --credentials device.json
 *
 * Same behaviour as simulators/device.py (see simulators/README.md): MQTT 3.1.1,
 * clientId = device id, clean session off, subscribe <id>/# QoS 1, reply on
 * server/<id>/<api> QoS 1, correlation_id echoed (a repeated one is not run again: a broker
 * node's death can deliver a QoS 1 request twice), replies serialised like Python's
 * json.dumps defaults.  TLS: the broker is verified against "ca" (rejectUnauthorized,
 * hostname checked), the client presents "certificate"/"private_key"; no username.
 */

const fs = require('fs');
const os = require('os');
const mqtt = require('mqtt');

const KEYWORD = 'Hello World';
const KEYWORD_MESSAGE = 'Hi, How are you today?';
const DEFAULT_RECIPIENT = 'user@example.com';
// The last string correlation ids of requests run, and the longest remembered (UTF-8 bytes): the
// bounds of simulators/device.py and the C core, so all three drop the same repeats.
const RECENT_CORRELATION_IDS = 8;
const MAX_CORRELATION_ID = 64;
const SAFE_ID = /^[A-Za-z0-9_\-:]{1,128}$/;
const APIS = new Set(['get_status', 'set_status', 'get_gpio', 'set_gpio', 'get_rtc', 'set_rtc', 'get_mac',
  'get_ip', 'get_subnet', 'get_gateway', 'write_uart', 'trigger_notification']);

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

function log(level, msg) {
  process.stderr.write(`${new Date().toISOString()} ${level} simulators.node: ${msg}\n`);
}

// ---------------------------------------------------------------------------------------
// Python json.dumps()-compatible serialisation: ", " and ": " separators, ensure_ascii.
function pyDumps(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return 'NaN';
    if (!Number.isFinite(v)) return v > 0 ? 'Infinity' : '-Infinity';
    return JSON.stringify(v);
  }
  if (typeof v === 'string') {
    return JSON.stringify(v).replace(/[\u007f-\uffff]/g,
      (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
  }
  if (Array.isArray(v)) return '[' + v.map(pyDumps).join(', ') + ']';
  return '{' + Object.keys(v).map((k) => pyDumps(k) + ': ' + pyDumps(v[k])).join(', ') + '}';
}

// ---------------------------------------------------------------------------------------
// Host network information.
function networkInfo() {
  let gateway = null;
  let routeIface = null;
  try {
    const lines = fs.readFileSync('/proc/net/route', 'ascii').trim().split('\n').slice(1);
    for (const line of lines) {
      const f = line.trim().split(/\s+/);
      if (f[1] === '00000000') {
        routeIface = f[0];
        if (parseInt(f[3], 16) & 2) {
          const g = parseInt(f[2], 16);
          gateway = [g & 255, (g >>> 8) & 255, (g >>> 16) & 255, (g >>> 24) & 255].join('.');
        }
        break;
      }
    }
  } catch (e) { /* not Linux */ }
  const ifaces = os.networkInterfaces();
  const names = routeIface && ifaces[routeIface] ? [routeIface] : Object.keys(ifaces);
  let entry = null;
  for (const name of names) {
    entry = (ifaces[name] || []).find((a) => a.family === 'IPv4' && !a.internal);
    if (entry) break;
  }
  const ip = entry ? entry.address : '127.0.0.1';
  let mac = entry && entry.mac !== '00:00:00:00:00:00' ? entry.mac : null;
  if (!mac) mac = '02:00:00:00:00:01';
  const subnet = entry ? entry.netmask : '255.0.0.0';
  if (!gateway) gateway = ip.startsWith('127.') ? '127.0.0.1' : ip.replace(/\.\d+$/, '.1');
  return { mac: mac.toUpperCase(), ip, subnet, gateway };
}

// ---------------------------------------------------------------------------------------
// Device behaviour (mirror of simulators/device.py).
class InvalidRequest extends Error {}

function asInt(v, what) {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^\s*[+-]?\d+\s*$/.test(v)) return parseInt(v, 10);
  throw new InvalidRequest(`${what} must be an integer or a numeric string, got ${JSON.stringify(v)}`);
}

function required(req, key) {
  if (!Object.prototype.hasOwnProperty.call(req, key)) throw new InvalidRequest(`missing '${key}'`);
  return req[key];
}

class Device {
  constructor(deviceId, recipient, display) {
    this.id = deviceId;
    this.recipient = recipient || DEFAULT_RECIPIENT;
    this.gpio = new Map();
    this.display = display || ((text) => process.stdout.write(`[${deviceId}] ${text}\n`));
    this.net = null;
    this.recent = [];
  }

  requestApi(topic) {
    const prefix = this.id + '/';
    return topic.startsWith(prefix) && topic.length > prefix.length ? topic.slice(prefix.length) : null;
  }

  network() {
    if (!this.net) this.net = networkInfo();
    return this.net;
  }

  gpioNumber(req) {
    const n = asInt(required(req, 'number'), 'number');
    if (n < 0) throw new InvalidRequest(`number must be >= 0, got ${n}`);
    return n;
  }

  // Returns [{api, payload}] -- reply first, then extra publishes.
  handle(api, payload) {
    let req;
    try {
      const text = Buffer.isBuffer(payload) ? new TextDecoder('utf-8', { fatal: true }).decode(payload) : String(payload);
      req = text.trim() ? JSON.parse(text) : {};
    } catch (e) {
      log('WARNING', `${this.id}: malformed ${api} payload ignored (${e.message})`);
      return [];
    }
    if (req === null || typeof req !== 'object' || Array.isArray(req)) {
      log('WARNING', `${this.id}: ${api} payload is not a JSON object, ignored`);
      return [];
    }
    if (!APIS.has(api)) {
      log('WARNING', `${this.id}: unknown api '${api}' ignored`);
      return [];
    }
    const cid = req.correlation_id;
    const remembered = typeof cid === 'string' && Buffer.byteLength(cid, 'utf8') <= MAX_CORRELATION_ID ? cid : null;
    if (remembered !== null && this.recent.includes(remembered)) {
      log('WARNING', `${this.id}: repeated ${api} request (correlation id ${JSON.stringify(remembered)}) not run again`);
      return [];
    }
    let reply = null;
    const extra = [];
    try {
      switch (api) {
        case 'get_status': reply = { value: 'running' }; break;
        case 'set_status': reply = { value: 'restarting' }; break;
        case 'get_gpio': {
          const n = this.gpioNumber(req);
          reply = { number: n, value: this.gpio.get(n) || 0 };
          break;
        }
        case 'set_gpio': {
          const n = this.gpioNumber(req);
          const v = asInt(required(req, 'value'), 'value') ? 1 : 0;
          this.gpio.set(n, v);
          reply = { number: n, value: v };
          break;
        }
        case 'get_rtc': reply = { value: Math.floor(Date.now() / 1000) }; break;
        case 'set_rtc': reply = { value: required(req, 'value') }; break;
        case 'get_mac': reply = { value: this.network().mac }; break;
        case 'get_ip': reply = { value: this.network().ip }; break;
        case 'get_subnet': reply = { value: this.network().subnet }; break;
        case 'get_gateway': reply = { value: this.network().gateway }; break;
        case 'write_uart': {
          const value = required(req, 'value');
          const text = typeof value === 'string' ? value : pyDumps(value);
          this.display(text);
          reply = { value };
          if (text.includes(KEYWORD)) {
            // Several recipients (comma-separated) get one trigger each, as in the Python simulator.
            for (const recipient of this.recipient.split(',').map((r) => r.trim()).filter(Boolean)) {
              extra.push({ api: 'trigger_notification', payload: pyDumps({ recipient, message: KEYWORD_MESSAGE }) });
            }
          }
          break;
        }
        case 'trigger_notification':
          if (req.recipient === this.id) {
            this.display(`notification: ${req.message === undefined ? '' : req.message}`);
            break;  // shown, not answered
          }
          reply = { ...req };
          break;
        default: return [];
      }
    } catch (e) {
      if (e instanceof InvalidRequest) {
        log('WARNING', `${this.id}: invalid ${api} request ignored: ${e.message}`);
        return [];
      }
      throw e;
    }
    if (remembered !== null) {
      this.recent.push(remembered);
      if (this.recent.length > RECENT_CORRELATION_IDS) this.recent.shift();
    }
    if (reply === null) return [];
    if (Object.prototype.hasOwnProperty.call(req, 'correlation_id') && !('correlation_id' in reply)) {
      reply.correlation_id = req.correlation_id;
    }
    return [{ api, payload: pyDumps(reply) }, ...extra];
  }
}

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

module.exports = { Device, pyDumps, networkInfo };
