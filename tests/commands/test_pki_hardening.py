"""Finding 10 (PKI parts): which CSRs the CA signs, and how secrets land on disk."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from commands.pki import CA_KEY_FILE, CertificateAuthority, InvalidCSR, load_csr_public_key

RSA_4096 = rsa.generate_private_key(public_exponent=65537, key_size=4096)


def csr_for(key, algorithm=hashes.SHA256(), extensions=()) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")]))
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM).decode()


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


class TestCsrKeys:
    @pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()], ids=lambda c: c.name)
    def test_accepts_p256_and_p384(self, curve):
        key = ec.generate_private_key(curve)
        assert load_csr_public_key(csr_for(key)).public_numbers() == key.public_key().public_numbers()

    @pytest.mark.parametrize("curve", [ec.SECP192R1(), ec.SECP224R1(), ec.SECP256K1(), ec.SECP521R1()],
                             ids=lambda c: c.name)
    def test_refuses_every_other_curve(self, curve):
        with pytest.raises(InvalidCSR, match="P-256 or P-384"):
            load_csr_public_key(csr_for(ec.generate_private_key(curve)))

    @pytest.mark.parametrize("bits", [2048, 3072, 4096])
    def test_accepts_rsa_2048_to_4096(self, bits):
        key = RSA_4096 if bits == 4096 else rsa.generate_private_key(public_exponent=65537, key_size=bits)
        assert load_csr_public_key(csr_for(key)).key_size == bits

    def test_refuses_rsa_above_4096_bits(self):
        key = rsa.generate_private_key(public_exponent=65537, key_size=4608)
        with pytest.raises(InvalidCSR, match="2048 to 4096"):
            load_csr_public_key(csr_for(key))

    def test_refuses_rsa_below_2048_bits(self):
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        with pytest.raises(InvalidCSR, match="2048 to 4096"):
            load_csr_public_key(csr_for(key))

    def test_refuses_a_small_rsa_public_exponent(self):
        key = rsa.generate_private_key(public_exponent=3, key_size=2048)
        with pytest.raises(InvalidCSR, match="exponent"):
            load_csr_public_key(csr_for(key))

    def test_refuses_ed25519_which_the_broker_was_not_verified_with(self):
        with pytest.raises(InvalidCSR):
            load_csr_public_key(csr_for(ed25519.Ed25519PrivateKey.generate(), algorithm=None))

    def test_refuses_a_csr_whose_signature_does_not_verify(self):
        der = bytearray(x509.load_pem_x509_csr(csr_for(ec.generate_private_key(ec.SECP256R1())).encode())
                        .public_bytes(serialization.Encoding.DER))
        der[-3] ^= 0x01  # inside the signature
        tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()
        with pytest.raises(InvalidCSR, match="signature"):
            load_csr_public_key(tampered)

    def test_refuses_an_oversized_csr_before_parsing_it(self):
        # A valid, correctly self-signed CSR padded with 4,000 SAN entries (about 90 KB).
        names = x509.SubjectAlternativeName([x509.DNSName(f"host{i}.example.com") for i in range(4000)])
        big = csr_for(ec.generate_private_key(ec.SECP256R1()), extensions=[names])
        assert len(big) > 64_000
        with pytest.raises(InvalidCSR, match="larger than"):
            load_csr_public_key(big)

    @pytest.mark.parametrize("junk", [None, 5, {"pem": "x"}, "", "garbage", b"\x00" * 10])
    def test_refuses_junk_with_invalid_csr(self, junk):
        with pytest.raises(InvalidCSR):
            load_csr_public_key(junk)


class TestSecretFiles:
    def test_ca_key_is_0600_in_a_0700_directory(self, tmp_path):
        CertificateAuthority.load_or_create(tmp_path / "pki")
        assert mode(tmp_path / "pki") == 0o700
        assert mode(tmp_path / "pki" / CA_KEY_FILE) == 0o600

    def test_a_symlink_planted_at_the_ca_key_path_is_not_followed(self, tmp_path):
        pki, target = tmp_path / "pki", tmp_path / "attacker-readable.pem"
        pki.mkdir(mode=0o700)
        (pki / CA_KEY_FILE).symlink_to(target)
        with pytest.raises(OSError):
            CertificateAuthority.load_or_create(pki)
        assert not target.exists(), "the CA key was written through the symlink"
        assert os.path.islink(pki / CA_KEY_FILE)

    def test_a_symlinked_ca_key_is_not_loaded(self, tmp_path):
        real = tmp_path / "real"
        CertificateAuthority.load_or_create(real)
        linked = tmp_path / "linked"
        linked.mkdir(mode=0o700)
        (linked / "ca.pem").write_bytes((real / "ca.pem").read_bytes())
        (linked / CA_KEY_FILE).symlink_to(real / CA_KEY_FILE)
        with pytest.raises(OSError):
            CertificateAuthority.load_or_create(linked)

    def test_secrets_are_written_atomically_without_leftovers(self, tmp_path):
        CertificateAuthority.load_or_create(tmp_path / "pki")
        assert sorted(p.name for p in (tmp_path / "pki").iterdir()) == ["ca.key", "ca.pem"]

    def test_prepare_state_makes_every_secret_0600_and_the_state_dir_0700(self, make_settings, tmp_path):
        state = tmp_path / "loose-state"
        state.mkdir(mode=0o755)
        os.chmod(state, 0o755)
        settings = make_settings("sqlite", state_dir=state)
        assert mode(settings.state_dir) == 0o700
        for folder in (settings.pki_dir, settings.state_dir / "keys"):
            assert mode(folder) == 0o700, folder
        for secret in (settings.pki_dir / CA_KEY_FILE, settings.state_dir / "keys" / "token-signing.pem",
                       settings.state_dir / "keys" / "code.key"):
            assert mode(secret) == 0o600, secret

    def test_a_symlink_at_a_signing_key_path_is_not_followed(self, tmp_path):
        from iotcloud.bootstrap import load_or_create_secret
        keys, target = tmp_path / "keys", tmp_path / "elsewhere.key"
        keys.mkdir(mode=0o700)
        (keys / "code.key").symlink_to(target)
        with pytest.raises(OSError):
            load_or_create_secret(keys / "code.key")
        assert not target.exists()

    def test_broker_service_keys_are_0600_and_symlinks_are_not_followed(self, tmp_path):
        from gateways.broker.node import PrivateBrokerNode
        node = PrivateBrokerNode(tmp_path / "broker", CertificateAuthority.load_or_create(tmp_path / "pki"),
                                 auth_backend_url="http://127.0.0.1:1")
        credentials = node.service_credentials("iotcloud-gateway")
        assert mode(credentials.key_file) == 0o600
        assert mode(credentials.key_file.parent) == 0o700
        # A planted symlink (cert present, key missing) makes the node reissue: it must not write through it.
        target = tmp_path / "stolen.key"
        credentials.key_file.unlink()
        credentials.key_file.symlink_to(target)
        try:
            node.service_credentials("iotcloud-gateway")
        except OSError:
            pass
        assert not target.exists(), "the service key was written through the symlink"
