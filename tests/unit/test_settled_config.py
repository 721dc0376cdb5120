"""The API worker's settled gunicorn configuration reads the same as gunicorn's own."""

from gunicorn.config import Config

from iotcloud.settled_config import SettledConfig


def configured() -> Config:
    config = Config()
    config.set("threads", 32)
    config.set("keepalive", 7)
    config.set("forwarded_allow_ips", "10.0.0.0/8,127.0.0.1")
    config.set("limit_request_line", 2048)
    return config


def test_every_setting_reads_the_same_and_is_a_plain_attribute():
    config = configured()
    settled = SettledConfig(config)
    for name in config.settings:
        assert getattr(settled, name) == getattr(config, name), name
        if name not in dir(Config):  # a property of Config's own (worker_class) stays one
            assert name in vars(settled), name  # no per-access lookup through __getattr__
    assert (settled.threads, settled.keepalive, settled.limit_request_line) == (32, 7, 2048)


def test_properties_and_methods_come_from_gunicorns_config():
    config = configured()
    settled = SettledConfig(config)
    assert settled.is_ssl == config.is_ssl and not settled.is_ssl
    assert settled.worker_class is config.worker_class
    assert settled.sendfile == config.sendfile
    assert [str(n) for n in settled.forwarded_allow_networks()] == ["10.0.0.0/8", "127.0.0.1/32"]
    assert callable(settled.pre_request) and settled.pre_request is config.pre_request
