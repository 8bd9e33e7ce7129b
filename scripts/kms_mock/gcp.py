"""A local Google Cloud KMS for ciphervec's tests, written from Google's public REST reference
(no emulator of Cloud KMS exists). It implements:

  POST /v1/{cryptoKey or cryptoKeyVersion}:encrypt   {plaintext, additionalAuthenticatedData,
        plaintextCrc32c, additionalAuthenticatedDataCrc32c} (bytes as base64, int64 as
        decimal strings) -> {name, ciphertext, ciphertextCrc32c, verifiedPlaintextCrc32c,
        verifiedAdditionalAuthenticatedDataCrc32c, protectionLevel}
  POST /v1/{cryptoKey}:decrypt   {ciphertext, additionalAuthenticatedData, *Crc32c}
        -> {plaintext, plaintextCrc32c, usedPrimary, protectionLevel}
  POST /v1/projects/P/locations/L/keyRings?keyRingId=R
  POST /v1/{keyRing}/cryptoKeys?cryptoKeyId=K  {"purpose": "ENCRYPT_DECRYPT"}  (version 1, primary)
  POST /v1/{cryptoKey}/cryptoKeyVersions  {}   (a new enabled version, not primary)
  POST /v1/{cryptoKey}:updatePrimaryVersion  {"cryptoKeyVersionId": "2"}
  PATCH /v1/{cryptoKeyVersion}?updateMask=state  {"state": "DISABLED" | "ENABLED"}
  errors as {"error": {"code", "message", "status"}}: UNAUTHENTICATED 401, NOT_FOUND 404,
        FAILED_PRECONDITION 400 (a version that is not enabled), INVALID_ARGUMENT 400 (a
        ciphertext or AAD that does not decrypt, a checksum that does not match)

  POST /token...   the OAuth 2.0 token endpoint of a service account (RFC 7523): the assertion
        is an RS256 JWT, verified against the service account's public key (iss, aud = this
        endpoint's URL, scope, iat/exp at most an hour apart and current); also the
        refresh_token grant of gcloud's authorized_user credentials
  GET  .../computeMetadata/v1/instance/service-accounts/default/token   the GCE metadata
        server (needs "Metadata-Flavor: Google", answers with it)

At start it writes into --state-dir a service-account key file and an authorized_user file
(token_uri pointing here), and an impostor's file: the same account and key id with another
private key, whose assertions fail the signature check.

Each key version has its own AES-256-GCM key; a ciphertext is version (4 bytes) | nonce (12)
| AES-GCM(plaintext, aad), so a wrong AAD or an altered byte fails authentication as it does
on the real service.

    python gcp.py --port 45801 --state-dir target/kms-servers --static-token TOKEN
"""

import argparse
import base64
import json
import os
import re
import secrets
import time
import urllib.parse

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from common import Handler, State, b64url_decode, crc32c, serve

KEY_RE = r"projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/:]+"
SCOPES = ("https://www.googleapis.com/auth/cloudkms", "https://www.googleapis.com/auth/cloud-platform")


def error(status, code, message):
    return status, {"error": {"code": status, "message": message, "status": code}}


class Kms:
    def __init__(self):
        self.rings = set()
        self.keys = {}  # name -> {"primary": n, "versions": {n: {"state", "aes"}}}

    def version(self, key_name, number):
        return self.keys[key_name]["versions"].get(number)


class GcpHandler(Handler):
    kms = None
    service_account = None  # {"email", "public_key"}
    user = None  # {"client_id", "client_secret", "refresh_token"}

    def fault_body(self, status):
        code = {429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}.get(status, "INTERNAL")
        return {"error": {"code": status, "message": "injected failure", "status": code}}

    def route(self):
        path = urllib.parse.urlparse(self.path).path
        if self.command == "POST" and path.startswith("/token"):
            return self.token()
        if self.command == "GET" and path.endswith(
            "/computeMetadata/v1/instance/service-accounts/default/token"
        ):
            return self.metadata_token()
        if path.startswith("/v1/"):
            ok, reason, _ = self.state.check(self.headers.get("Authorization"))
            if not ok:
                self.body_bytes()
                return self.send(*error(
                    401, "UNAUTHENTICATED",
                    "Request had invalid authentication credentials. Expected OAuth 2 access "
                    "token, login cookie or other valid authentication credential.",
                ))
            return self.api(path[len("/v1/"):])
        self.body_bytes()
        return self.send(404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}})

    # -- OAuth ---------------------------------------------------------------------------
    def token(self):
        form = self.form_body()
        grant = form.get("grant_type")
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            problem = self.verify_assertion(form.get("assertion", ""))
            if problem:
                return self.send(400, {"error": "invalid_grant", "error_description": problem})
        elif grant == "refresh_token":
            user = self.user
            if form.get("client_id") != user["client_id"] or form.get("client_secret") != user["client_secret"]:
                return self.send(401, {"error": "invalid_client", "error_description": "Unauthorized"})
            if form.get("refresh_token") != user["refresh_token"]:
                return self.send(400, {"error": "invalid_grant", "error_description": "Bad Request"})
        else:
            return self.send(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"})
        token, lifetime = self.state.issue(self.path, "gcp", "ya29.mock-")
        return self.send(200, {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"})

    def verify_assertion(self, assertion):
        """None when `assertion` is a valid RS256 JWT of the service account for this
        endpoint, else Google's kind of reason."""
        parts = assertion.split(".")
        if len(parts) != 3:
            return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe"
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            signature = b64url_decode(parts[2])
        except ValueError:
            return "Invalid JWT: malformed"
        if header.get("alg") != "RS256":
            return "Invalid JWT: unsupported alg"
        try:
            self.service_account["public_key"].verify(
                signature, (parts[0] + "." + parts[1]).encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            return "Invalid JWT Signature."
        if claims.get("iss") != self.service_account["email"]:
            return "Invalid JWT: unknown issuer"
        audience = f"http://{self.headers.get('Host')}{self.path}"
        if claims.get("aud") != audience:
            return "Invalid JWT: audience does not match the token endpoint"
        if not set(str(claims.get("scope", "")).split()) & set(SCOPES):
            return "Invalid JWT: no Cloud KMS scope"
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int) or exp - iat > 3600 \
                or iat > now + 60 or exp < now:
            return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
        if header.get("kid") not in (None, self.service_account["key_id"]):
            return "Invalid JWT: unknown key id"
        return None

    def metadata_token(self):
        if self.headers.get("Metadata-Flavor") != "Google":
            return self.send(403, {"error": "Missing Metadata-Flavor:Google header."})
        token, lifetime = self.state.issue(self.path, "gcp", "ya29.metadata-")
        return self.send(
            200,
            {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"},
            {"Metadata-Flavor": "Google"},
        )

    # -- Cloud KMS -----------------------------------------------------------------------
    def api(self, path):
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(self.path).query))
        body = self.json_body()
        if body is None:
            return self.send(*error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."))
        kms = self.kms
        with self.state.lock:
            m = re.fullmatch(r"(projects/[^/]+/locations/[^/]+)/keyRings", path)
            if m and self.command == "POST":
                name = f"{m.group(1)}/keyRings/{query.get('keyRingId')}"
                if name in kms.rings:
                    return self.send(*error(409, "ALREADY_EXISTS", f"KeyRing {name} already exists."))
                kms.rings.add(name)
                return self.send(200, {"name": name})
            m = re.fullmatch(r"(projects/[^/]+/locations/[^/]+/keyRings/[^/]+)/cryptoKeys", path)
            if m and self.command == "POST":
                if m.group(1) not in kms.rings:
                    return self.send(*error(404, "NOT_FOUND", f"KeyRing {m.group(1)} not found."))
                name = f"{m.group(1)}/cryptoKeys/{query.get('cryptoKeyId')}"
                if name in kms.keys:
                    return self.send(*error(409, "ALREADY_EXISTS", f"CryptoKey {name} already exists."))
                if body.get("purpose") != "ENCRYPT_DECRYPT":
                    return self.send(*error(400, "INVALID_ARGUMENT", "purpose must be ENCRYPT_DECRYPT here"))
                kms.keys[name] = {"primary": 1, "versions": {1: {"state": "ENABLED", "aes": AESGCM.generate_key(256)}}}
                return self.send(200, self.key_json(name))
            m = re.fullmatch(f"({KEY_RE})/cryptoKeyVersions", path)
            if m and self.command == "POST":
                key = kms.keys.get(m.group(1))
                if key is None:
                    return self.send(*error(404, "NOT_FOUND", f"CryptoKey {m.group(1)} not found."))
                number = max(key["versions"]) + 1
                key["versions"][number] = {"state": "ENABLED", "aes": AESGCM.generate_key(256)}
                return self.send(200, {"name": f"{m.group(1)}/cryptoKeyVersions/{number}", "state": "ENABLED"})
            m = re.fullmatch(f"({KEY_RE}):updatePrimaryVersion", path)
            if m and self.command == "POST":
                key = kms.keys.get(m.group(1))
                number = int(body.get("cryptoKeyVersionId", "0"))
                if key is None or number not in key["versions"]:
                    return self.send(*error(404, "NOT_FOUND", "CryptoKeyVersion not found."))
                key["primary"] = number
                return self.send(200, self.key_json(m.group(1)))
            m = re.fullmatch(f"({KEY_RE})/cryptoKeyVersions/([0-9]+)", path)
            if m and self.command == "PATCH":
                key = kms.keys.get(m.group(1))
                version = key and key["versions"].get(int(m.group(2)))
                if not version:
                    return self.send(*error(404, "NOT_FOUND", f"CryptoKeyVersion {path} not found."))
                if query.get("updateMask") != "state" or body.get("state") not in ("ENABLED", "DISABLED"):
                    return self.send(*error(400, "INVALID_ARGUMENT", "only state ENABLED/DISABLED may be updated"))
                version["state"] = body["state"]
                return self.send(200, {"name": path, "state": version["state"]})
            m = re.fullmatch(f"({KEY_RE})(?:/cryptoKeyVersions/([0-9]+))?:encrypt", path)
            if m and self.command == "POST":
                return self.send(*self.encrypt(m.group(1), m.group(2), body))
            m = re.fullmatch(f"({KEY_RE}):decrypt", path)
            if m and self.command == "POST":
                return self.send(*self.decrypt(m.group(1), body))
        return self.send(*error(404, "NOT_FOUND", "Method not found."))

    def key_json(self, name):
        key = self.kms.keys[name]
        return {
            "name": name,
            "purpose": "ENCRYPT_DECRYPT",
            "primary": {"name": f"{name}/cryptoKeyVersions/{key['primary']}",
                        "state": key["versions"][key["primary"]]["state"]},
        }

    @staticmethod
    def field_bytes(body, name, required):
        value = body.get(name)
        if value is None:
            if required:
                raise ValueError(f"{name} is required")
            return b""
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            raise ValueError(f"Invalid value at '{name}' (TYPE_BYTES), Base64 decoding failed")

    @staticmethod
    def check_crc(body, data, field, name):
        if field in body and int(body[field]) != crc32c(data):
            raise ValueError(f"The checksum in field {field} did not match the data in field {name}.")
        return field in body

    def encrypt(self, key_name, version_number, body):
        key = self.kms.keys.get(key_name)
        if key is None:
            return error(404, "NOT_FOUND", f"CryptoKey {key_name} not found.")
        number = int(version_number) if version_number else key["primary"]
        version_name = f"{key_name}/cryptoKeyVersions/{number}"
        version = key["versions"].get(number)
        if version is None:
            return error(404, "NOT_FOUND", f"CryptoKeyVersion {version_name} not found.")
        if version["state"] != "ENABLED":
            return error(400, "FAILED_PRECONDITION",
                         f"{version_name} is not enabled, current state is: {version['state']}.")
        try:
            plaintext = self.field_bytes(body, "plaintext", True)
            aad = self.field_bytes(body, "additionalAuthenticatedData", False)
            verified_plaintext = self.check_crc(body, plaintext, "plaintextCrc32c", "plaintext")
            verified_aad = self.check_crc(body, aad, "additionalAuthenticatedDataCrc32c",
                                          "additional_authenticated_data")
        except ValueError as e:
            return error(400, "INVALID_ARGUMENT", str(e))
        if len(plaintext) > 64 * 1024:
            return error(400, "INVALID_ARGUMENT", "plaintext is larger than 64KiB")
        nonce = os.urandom(12)
        ciphertext = number.to_bytes(4, "big") + nonce + AESGCM(version["aes"]).encrypt(nonce, plaintext, aad)
        return 200, {
            "name": version_name,
            "ciphertext": base64.b64encode(ciphertext).decode(),
            "ciphertextCrc32c": str(crc32c(ciphertext)),
            "verifiedPlaintextCrc32c": verified_plaintext,
            "verifiedAdditionalAuthenticatedDataCrc32c": verified_aad,
            "protectionLevel": "SOFTWARE",
        }

    def decrypt(self, key_name, body):
        key = self.kms.keys.get(key_name)
        if key is None:
            return error(404, "NOT_FOUND", f"CryptoKey {key_name} not found.")
        try:
            ciphertext = self.field_bytes(body, "ciphertext", True)
            aad = self.field_bytes(body, "additionalAuthenticatedData", False)
            self.check_crc(body, ciphertext, "ciphertextCrc32c", "ciphertext")
            self.check_crc(body, aad, "additionalAuthenticatedDataCrc32c", "additional_authenticated_data")
        except ValueError as e:
            return error(400, "INVALID_ARGUMENT", str(e))
        failed = error(400, "INVALID_ARGUMENT",
                       "Decryption failed: verify that 'name' refers to the correct CryptoKey.")
        if len(ciphertext) < 4 + 12 + 16:
            return failed
        number = int.from_bytes(ciphertext[:4], "big")
        version = key["versions"].get(number)
        if version is None:
            return failed
        if version["state"] != "ENABLED":
            return error(400, "FAILED_PRECONDITION",
                         f"{key_name}/cryptoKeyVersions/{number} is not enabled, current state is: "
                         f"{version['state']}.")
        try:
            plaintext = AESGCM(version["aes"]).decrypt(ciphertext[4:16], ciphertext[16:], aad)
        except InvalidTag:
            return failed
        return 200, {
            "plaintext": base64.b64encode(plaintext).decode(),
            "plaintextCrc32c": str(crc32c(plaintext)),
            "usedPrimary": number == key["primary"],
            "protectionLevel": "SOFTWARE",
        }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--static-token", required=True)
    args = parser.parse_args()

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_id = secrets.token_hex(20)
    email = "ciphervec-test@ciphervec-test.iam.gserviceaccount.com"
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    base = f"http://127.0.0.1:{args.port}"
    service_account = {
        "type": "service_account",
        "project_id": "ciphervec-test",
        "private_key_id": key_id,
        "private_key": pem,
        "client_email": email,
        "client_id": "100000000000000000001",
        "token_uri": f"{base}/token",
    }
    user = {
        "type": "authorized_user",
        "client_id": "ciphervec-test.apps.googleusercontent.com",
        "client_secret": secrets.token_urlsafe(18),
        "refresh_token": "1//" + secrets.token_urlsafe(30),
        "token_uri": f"{base}/token/user",
    }
    # The same account and key id with another private key: its assertions must be refused.
    impostor = dict(service_account)
    impostor["private_key"] = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    os.makedirs(args.state_dir, exist_ok=True)
    files = (
        ("gcp-service-account.json", service_account),
        ("gcp-service-account-impostor.json", impostor),
        ("gcp-authorized-user.json", user),
    )
    for name, content in files:
        path = os.path.join(args.state_dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(content, f)

    GcpHandler.kms = Kms()
    GcpHandler.service_account = {"email": email, "key_id": key_id, "public_key": private.public_key()}
    GcpHandler.user = user
    state = State()
    state.add_static(args.static_token, "gcp")
    serve(GcpHandler, args.port, state)


if __name__ == "__main__":
    main()
