"""Device simulators for iotcloud (libpyiotcloud-compatible devices).

* :mod:`simulators.device`       -- the pure, transport-independent device behaviour.
* :mod:`simulators.credentials`  -- the credentials file every simulator reads.
* :mod:`simulators.mqtt_device`  -- one device over MQTT(S) (paho-mqtt 2.x).
* :mod:`simulators.amqp_device`  -- one device over AMQP(S) (pika 1.x).
* :mod:`simulators.fleet`        -- many MQTT devices in one process, one selector loop.
* ``simulators/node/device_simulator.js`` -- one device over MQTT(S) with the ``mqtt`` npm package (its behaviour: ``device.js``).
"""
