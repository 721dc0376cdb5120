'use strict';
/*
 * The device behaviour of the Node simulator: what a libpyiotcloud device answers to each request,
 * request by request, mirroring simulators/device.py byte for byte (tests/simulators/test_sim_conformance.py).
 * No network here: device_simulator.js connects it to a broker.
 */

const fs = require('fs');
const os = require('os');

const KEYWORD = 'Hello World';
const KEYWORD_MESSAGE = 'Hi, How are you today?';
const DEFAULT_RECIPIENT = 'user@example.com';
// The last string correlation ids of requests run, and the longest remembered (UTF-8 bytes): the
// bounds of simulators/device.py and the C core, so all three drop the same repeats.
const RECENT_CORRELATION_IDS = 8;
const MAX_CORRELATION_ID = 64;
const APIS = new Set(['get_status', 'set_status', 'get_gpio', 'set_gpio', 'get_rtc', 'set_rtc', 'get_mac',
  'get_ip', 'get_subnet', 'get_gateway', 'write_uart', 'trigger_notification']);

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

module.exports = { Device, DEFAULT_RECIPIENT, log, networkInfo, pyDumps };
