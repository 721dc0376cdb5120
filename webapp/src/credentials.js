// Credentials this tab received (registration, reissue, or a file the user loaded), kept in memory only:
// the private key is shown once and never stored by the platform, and never written to browser storage.
const held = new Map();

export const remember = (credentials) => held.set(credentials.name, credentials);
export const recall = (name) => held.get(name);
export const forget = (name) => held.delete(name);

export function simulatorCommands(name) {
  const file = `${name}.json`;
  return [`python -m simulators.mqtt_device --credentials ${file}`,
          `node simulators/node/device_simulator.js --credentials ${file}`];
}

export const fileName = (name) => `${name.replace(/[^A-Za-z0-9._-]/g, "_")}.json`;
