"""The broker access rules, one pure function per question RabbitMQ asks."""

import pytest

from gateways.broker.policy import Identities, resource_decision, topic_decision, user_decision, vhost_decision

IDS = Identities(frozenset({"iotcloud-gateway"}), "iotcloud-admin", "s3cret")
DEV = "83f58e3f7e284892f6da7b020e5c982a6ea16dee"


@pytest.mark.parametrize("device_id", ["PH80XXRR112219EF", "dev-A", "a_b", "iotcloud-gateway", DEV + "\n", DEV.upper(),
                                       DEV[:-1], DEV + "0", "a.b", "a/b", "#", "*", "a b", "", None, 7])
def test_only_platform_device_ids_log_in_as_devices(device_id):
    """The one device-id rule (commands.domain.device_ids): 40 lowercase hex, nothing else."""
    assert user_decision(device_id, None, Identities(), registered=True) == "deny"
    assert not vhost_decision(device_id, "/", None, Identities(), registered=True)


class TestLogin:
    def test_registered_certificate_logs_in(self):
        assert user_decision(DEV, None, IDS, registered=True) == "allow"

    def test_unregistered_certificate_is_refused(self):
        assert user_decision(DEV, None, IDS, registered=False) == "deny"

    def test_any_password_login_other_than_the_admin_is_refused(self):
        assert user_decision(DEV, "pw", IDS, registered=True) == "deny"
        assert user_decision("iotcloud-admin", "wrong", IDS, registered=False) == "deny"
        assert user_decision("iotcloud-gateway", "s3cret", IDS, registered=False) == "deny"

    def test_admin_with_its_password_gets_the_management_tag(self):
        assert user_decision("iotcloud-admin", "s3cret", IDS, registered=False) == "allow administrator"

    def test_admin_name_as_certificate_cn_is_refused_even_if_registered(self):
        assert user_decision("iotcloud-admin", None, IDS, registered=True) == "deny"

    def test_no_admin_configured_means_no_password_login(self):
        assert user_decision("", "", Identities(), registered=True) == "deny"
        assert user_decision("x", "x", Identities(admin_username="x", admin_password=""), registered=True) == "deny"

    def test_service_certificate_logs_in(self):
        assert user_decision("iotcloud-gateway", None, IDS, registered=False) == "allow"


class TestConnectionOpen:
    def test_mqtt_client_id_must_equal_the_certificate_cn(self):
        assert vhost_decision(DEV, "/", DEV, IDS, registered=True)
        assert not vhost_decision(DEV, "/", "other-device", IDS, registered=True)
        assert not vhost_decision(DEV, "/", "", IDS, registered=True)

    def test_amqp_connections_carry_no_client_id(self):
        assert vhost_decision(DEV, "/", None, IDS, registered=True)

    def test_other_vhosts_and_unregistered_devices_are_refused(self):
        assert not vhost_decision(DEV, "other", DEV, IDS, registered=True)
        assert not vhost_decision(DEV, "/", DEV, IDS, registered=False)

    def test_services_are_amqp_only_and_admin_has_no_vhost(self):
        assert vhost_decision("iotcloud-gateway", "/", None, IDS, registered=False)
        assert not vhost_decision("iotcloud-gateway", "/", "iotcloud-gateway", IDS, registered=False)
        assert not vhost_decision("iotcloud-admin", "/", None, IDS, registered=True)


class TestDeviceResources:
    @pytest.mark.parametrize("permission", ["configure", "read", "write"])
    def test_owns_exactly_its_mqtt_queues_and_uses_amq_topic(self, permission):
        for name in (f"mqtt-subscription-{DEV}qos0", f"mqtt-subscription-{DEV}qos1"):
            assert resource_decision(DEV, "/", "queue", name, permission, None, IDS)
        assert resource_decision(DEV, "/", "exchange", "amq.topic", permission, DEV, IDS)

    @pytest.mark.parametrize("resource,name", [
        ("queue", "mqtt-subscription-dev-Aqos1"), ("queue", "mqtt-subscription-devqos1"),
        ("queue", f"mqtt-subscription-{DEV}qos1x"), ("queue", "iotcloud.replies"),
        ("exchange", "amq.rabbitmq.event"), ("exchange", "amq.direct"), ("exchange", ""),
        ("topic", "amq.topic")])
    def test_nothing_else(self, resource, name):
        assert not resource_decision(DEV, "/", resource, name, "read", None, IDS)

    def test_prefix_of_another_id_does_not_grant_its_queue(self):
        assert not resource_decision("dev", "/", "queue", "mqtt-subscription-dev-Aqos1", "read", None, IDS)

    def test_mismatched_client_id_or_odd_permission_is_refused(self):
        assert not resource_decision(DEV, "/", "exchange", "amq.topic", "write", "x", IDS)
        assert not resource_decision(DEV, "/", "exchange", "amq.topic", "delete", None, IDS)
        assert not resource_decision(DEV, "/x", "exchange", "amq.topic", "write", None, IDS)


class TestDeviceTopics:
    def test_reads_its_own_namespace(self):
        assert topic_decision(DEV, "/", "amq.topic", "read", f"{DEV}.#", DEV, IDS)
        assert topic_decision(DEV, "/", "amq.topic", "read", f"{DEV}.get_status", None, IDS)

    @pytest.mark.parametrize("key", ["#", "*.get_status", "dev-A.#", f"{DEV}x.#", f"server.{DEV}.#", DEV[:-1] + ".#"])
    def test_reads_nothing_else(self, key):
        assert not topic_decision(DEV, "/", "amq.topic", "read", key, DEV, IDS)

    def test_writes_only_its_replies(self):
        assert topic_decision(DEV, "/", "amq.topic", "write", f"server.{DEV}.get_status", DEV, IDS)
        for key in (f"server.{DEV}.", f"server.{DEV}", "server.dev-A.get_status", f"{DEV}.x", "dev-A.set_gpio"):
            assert not topic_decision(DEV, "/", "amq.topic", "write", key, DEV, IDS)

    def test_client_id_mismatch_and_other_exchanges_are_refused(self):
        assert not topic_decision(DEV, "/", "amq.topic", "read", f"{DEV}.#", "other", IDS)
        assert not topic_decision(DEV, "/", "amq.rabbitmq.event", "read", "connection.#", None, IDS)


class TestGatewayRole:
    G = "iotcloud-gateway"

    def test_resources(self):
        g = self.G
        assert resource_decision(g, "/", "exchange", "amq.topic", "write", None, IDS)
        assert resource_decision(g, "/", "exchange", "amq.topic", "read", None, IDS)
        assert not resource_decision(g, "/", "exchange", "amq.topic", "configure", None, IDS)
        assert resource_decision(g, "/", "exchange", "amq.rabbitmq.event", "read", None, IDS)
        assert not resource_decision(g, "/", "exchange", "amq.rabbitmq.event", "write", None, IDS)
        assert resource_decision(g, "/", "queue", "iotcloud.gateway.replies", "configure", None, IDS)
        assert not resource_decision(g, "/", "queue", "iotcloud.gateway.", "read", None, IDS)
        assert not resource_decision(g, "/", "queue", "iotcloud.replies", "configure", None, IDS)
        assert not resource_decision(g, "/", "queue", f"mqtt-subscription-{DEV}qos1", "read", None, IDS)

    def test_topics(self):
        g = self.G
        assert topic_decision(g, "/", "amq.topic", "write", f"{DEV}.get_status", None, IDS)
        assert topic_decision(g, "/", "amq.topic", "read", "server.#", None, IDS)
        assert topic_decision(g, "/", "amq.topic", "read", f"server.{DEV}.#", None, IDS)
        assert topic_decision(g, "/", "amq.rabbitmq.event", "read", "connection.#", None, IDS)
        for exchange, permission, key in [
                ("amq.topic", "write", f"server.{DEV}.get_status"), ("amq.topic", "write", DEV),
                ("amq.topic", "write", f"{DEV}.a#"), ("amq.topic", "write", f"{DEV}..x"),
                ("amq.topic", "read", "#"), ("amq.topic", "read", f"{DEV}.#"),
                ("amq.rabbitmq.event", "read", "#"), ("amq.rabbitmq.event", "read", "user.#"),
                ("amq.rabbitmq.event", "write", "connection.created"), ("amq.direct", "read", "server.#")]:
            assert not topic_decision(g, "/", exchange, permission, key, None, IDS), (exchange, permission, key)


class TestApiServiceRole:
    """The REST API's broker identity: send calls and read answers (the short path), wake the gateway,
    hear outcomes; never answer for a device or read another service's queues."""

    from gateways.broker import policy as _p
    from gateways.broker.topology import API_SERVICE, GATEWAY_SERVICE
    IDS = _p.Identities(frozenset({GATEWAY_SERVICE, API_SERVICE}))

    def allowed(self, resource, name, permission, user="iotcloud-api"):
        return self._p.resource_decision(user, "/", resource, name, permission, None, self.IDS)

    def test_may_publish_wake_ups_and_read_outcomes_on_its_own_queues(self):
        assert self.allowed("exchange", "iotcloud.control", "write")
        assert self.allowed("exchange", "iotcloud.results", "read")
        assert self.allowed("queue", "iotcloud.api.host.123", "configure")
        assert self.allowed("queue", "iotcloud.api.host.123", "read")

    def test_sends_requests_and_reads_answers_but_never_speaks_for_a_device_or_the_gateway(self):
        device = "0123456789abcdef0123456789abcdef01234567"
        assert self.allowed("exchange", "amq.topic", "write")
        assert self.allowed("exchange", "amq.topic", "read")
        assert self._p.topic_decision("iotcloud-api", "/", "amq.topic", "write", f"{device}.get_gpio", None, self.IDS)
        assert self._p.topic_decision("iotcloud-api", "/", "amq.topic", "read", "server.#", None, self.IDS)
        assert not self._p.topic_decision("iotcloud-api", "/", "amq.topic", "write", f"server.{device}.get_gpio",
                                          None, self.IDS)
        assert not self._p.topic_decision("iotcloud-api", "/", "amq.topic", "write", "abc.get_gpio", None, self.IDS)
        assert not self.allowed("queue", "iotcloud.gateway.answers", "read")
        assert not self.allowed("queue", f"mqtt-subscription-{device}qos1", "read")
        assert not self.allowed("exchange", "iotcloud.results", "write")
        assert not self.allowed("exchange", "amq.rabbitmq.event", "read")

    def test_the_gateway_may_not_read_api_queues(self):
        assert not self.allowed("queue", "iotcloud.api.host.123", "read", user="iotcloud-gateway")
        assert self.allowed("exchange", "iotcloud.results", "write", user="iotcloud-gateway")
        assert self.allowed("exchange", "iotcloud.control", "read", user="iotcloud-gateway")



class TestPasswordDevices:
    """A password is accepted for a registered device registered for password login, as itself only."""

    def test_its_own_password_logs_it_in(self):
        from commands.broker_passwords import new_broker_password
        password, password_hash = new_broker_password()
        assert user_decision(DEV, password, IDS, registered=True, password_hash=password_hash) == "allow"
        assert user_decision(DEV, password + "x", IDS, registered=True, password_hash=password_hash) == "deny"
        assert user_decision(DEV, "", IDS, registered=True, password_hash=password_hash) == "deny"
        assert user_decision(DEV, password, IDS, registered=False, password_hash=password_hash) == "deny"

    def test_a_certificate_device_never_logs_in_by_password(self):
        for password in ("", "anything", "s3cret"):
            assert user_decision(DEV, password, IDS, registered=True, password_hash=None) == "deny"

    def test_reserved_names_and_non_device_ids_never_log_in_as_password_devices(self):
        from commands.broker_passwords import new_broker_password
        password, password_hash = new_broker_password()
        for name in ("iotcloud-gateway", "iotcloud-admin", "dev-A", DEV.upper()):
            assert user_decision(name, password, IDS, registered=True, password_hash=password_hash) == "deny"
