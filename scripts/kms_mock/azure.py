"""A local Azure Key Vault for ciphervec's tests, written from Microsoft's public REST reference
(no emulator of Key Vault's key operations can be installed here). It implements, with real
RSA-OAEP-256 (SHA-256, MGF1-SHA-256) on real RSA keys:

  POST  /keys/{name}/create?api-version=7.4   {"kty": "RSA", "key_size": 2048}  (a new version,
        now the current one)
  GET   /keys/{name}[/{version}]?api-version=7.4   {"key": {"kid", "kty", "key_ops", "n", "e"},
        "attributes": {"enabled"}}  (without a version: the current one)
  PATCH /keys/{name}/{version}?api-version=7.4   {"attributes": {"enabled": false}}
  POST  /keys/{name}/{version}/wrapkey?api-version=7.4    {"alg", "value"} -> {"kid", "value"}
  POST  /keys/{name}/{version}/unwrapkey?api-version=7.4  {"alg", "value"} -> {"kid", "value"}
        (values base64url without padding; the version is a required path parameter in the
        REST reference, so a request without one is answered 404 as an unknown operation)
  errors as {"error": {"code", "message", "innererror"?}}: 401 Unauthorized (no, unknown,
        expired token or another audience, with a WWW-Authenticate challenge), 404
        KeyNotFound, 403 Forbidden/KeyDisabled (any operation with a disabled version), 400
        BadParameter (bad algorithm, bad base64url, OAEP decoding failure)

  POST /{tenant}/oauth2/v2.0/token   Microsoft Entra's client-credentials grant (client_id,
        client_secret, scope "<resource>/.default"); errors {"error", "error_description"}
  GET  .../metadata/identity/oauth2/token?api-version=2018-02-01&resource=R[&client_id=C]
        the instance metadata service (needs "Metadata: true"; expires_in as a string)

Tokens carry their resource: Key Vault accepts only those for https://vault.azure.net.

    python azure.py --port 45802 --client-secret SECRET --static-token TOKEN
"""

import argparse
import re
import secrets
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from common import Handler, State, b64url_decode, b64url_encode, serve

RESOURCE = "https://vault.azure.net"
USER_ASSIGNED = "11111111-2222-3333-4444-555555555555"
OAEP_256 = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def kv_error(status, code, message, inner=None):
    error = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return status, {"error": error}


class AzureHandler(Handler):
    keys = {}  # name -> {"current": version, "versions": {version: {"private", "enabled"}}}
    client_secret = None

    def fault_body(self, status):
        code = "Throttled" if status == 429 else "ServiceUnavailable"
        return {"error": {"code": code, "message": "injected failure"}}

    def route(self):
        parsed = urllib.parse.urlparse(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        path = parsed.path
        if self.command == "POST" and re.fullmatch(r"(/[^/]+)*/[^/]+/oauth2/v2\.0/token", path):
            return self.entra_token()
        if self.command == "GET" and path.endswith("/metadata/identity/oauth2/token"):
            return self.imds_token(query)
        if path.startswith("/keys/"):
            ok, reason, audience = self.state.check(self.headers.get("Authorization"))
            if not ok or audience != RESOURCE:
                self.body_bytes()
                message = {
                    "missing": "AKV10000: Request is missing a Bearer or PoP token.",
                    "expired": "AKV10022: Token is expired.",
                }.get(reason, "AKV10032: Invalid token or audience.")
                return self.send(
                    *kv_error(401, "Unauthorized", message),
                    {"WWW-Authenticate": f'Bearer authorization="https://login.microsoftonline.com/tenant", resource="{RESOURCE}"'},
                )
            version = query.get("api-version", "")
            if not re.fullmatch(r"7\.[4-9](-preview)?|7\.\d\d", version):
                self.body_bytes()
                return self.send(*kv_error(400, "BadParameter", "The api-version is missing or not supported."))
            return self.keys_api(path)
        self.body_bytes()
        return self.send(404, {"error": {"code": "NotFound", "message": "not found"}})

    # -- tokens --------------------------------------------------------------------------
    def entra_token(self):
        form = self.form_body()
        if form.get("grant_type") != "client_credentials":
            return self.send(400, {"error": "unsupported_grant_type",
                                   "error_description": "AADSTS70003: unsupported grant type"})
        if not form.get("client_id"):
            return self.send(400, {"error": "invalid_request",
                                   "error_description": "AADSTS900144: The request body must contain client_id."})
        if form.get("client_secret") != self.client_secret:
            return self.send(401, {"error": "invalid_client",
                                   "error_description": "AADSTS7000215: Invalid client secret provided."})
        scope = form.get("scope", "")
        if not scope.endswith("/.default"):
            return self.send(400, {"error": "invalid_scope",
                                   "error_description": "AADSTS1002012: The provided value for scope is not valid."})
        token, lifetime = self.state.issue(self.path, scope[: -len("/.default")], "eyJ.entra-")
        return self.send(200, {"token_type": "Bearer", "expires_in": lifetime,
                               "ext_expires_in": lifetime, "access_token": token})

    def imds_token(self, query):
        if self.headers.get("Metadata") != "true":
            return self.send(400, {"error": "invalid_request",
                                   "error_description": "Required metadata header not specified"})
        if query.get("api-version") != "2018-02-01" or not query.get("resource"):
            return self.send(400, {"error": "invalid_request",
                                   "error_description": "Required query variable 'api-version' or 'resource' is missing"})
        if query.get("client_id") not in (None, USER_ASSIGNED):
            return self.send(400, {"error": "invalid_request", "error_description": "Identity not found"})
        token, lifetime = self.state.issue(self.path, query["resource"], "eyJ.imds-")
        now = int(time.time())
        return self.send(200, {
            "access_token": token, "refresh_token": "", "expires_in": str(lifetime),
            "expires_on": str(now + lifetime), "not_before": str(now),
            "resource": query["resource"], "token_type": "Bearer",
        })

    # -- keys ----------------------------------------------------------------------------
    def kid(self, name, version):
        return f"http://{self.headers.get('Host')}/keys/{name}/{version}"

    def keys_api(self, path):
        body = self.json_body()
        if body is None:
            return self.send(*kv_error(400, "BadParameter", "The request body is not valid JSON."))
        with self.state.lock:
            m = re.fullmatch(r"/keys/([A-Za-z0-9-]+)/create", path)
            if m and self.command == "POST":
                if body.get("kty") not in ("RSA", "RSA-HSM"):
                    return self.send(*kv_error(400, "BadParameter", "Only RSA keys are supported here."))
                name, version = m.group(1), secrets.token_hex(16)
                private = rsa.generate_private_key(65537, int(body.get("key_size", 2048)))
                key = self.keys.setdefault(name, {"versions": {}})
                key["versions"][version] = {"private": private, "enabled": True}
                key["current"] = version
                return self.send(200, self.key_bundle(name, version, key["versions"][version]))
            m = re.fullmatch(r"/keys/([A-Za-z0-9-]+)(?:/([A-Za-z0-9]+))?", path)
            if m and self.command == "GET":
                found = self.find(m.group(1), m.group(2))
                if isinstance(found, tuple):
                    return self.send(*found)
                version = m.group(2) or self.keys[m.group(1)]["current"]
                return self.send(200, self.key_bundle(m.group(1), version, found))
            m = re.fullmatch(r"/keys/([A-Za-z0-9-]+)/([A-Za-z0-9]+)", path)
            if m and self.command == "PATCH":
                version = self.find(m.group(1), m.group(2))
                if isinstance(version, tuple):
                    return self.send(*version)
                enabled = body.get("attributes", {}).get("enabled")
                if isinstance(enabled, bool):
                    version["enabled"] = enabled
                return self.send(200, self.key_bundle(m.group(1), m.group(2), version))
            m = re.fullmatch(r"/keys/([A-Za-z0-9-]+)/([A-Za-z0-9]+)/(wrapkey|unwrapkey)", path, re.I)
            if m and self.command == "POST":
                return self.send(*self.operation(m.group(1), m.group(2), m.group(3).lower(), body))
        return self.send(*kv_error(404, "NotFound", "The requested operation was not found."))

    def key_bundle(self, name, version, found):
        numbers = found["private"].public_key().public_numbers()
        return {
            "key": {"kid": self.kid(name, version), "kty": "RSA",
                    "key_ops": ["wrapKey", "unwrapKey"],
                    "n": b64url_encode(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                    "e": b64url_encode(numbers.e.to_bytes(3, "big"))},
            "attributes": {"enabled": found["enabled"]},
        }

    def find(self, name, version):
        key = self.keys.get(name)
        if key is None or (version and version not in key["versions"]):
            label = f"{name}/{version}" if version else name
            return kv_error(404, "KeyNotFound",
                            f"A key with (name/id) {label} was not found in this key vault.")
        return key["versions"][version or key["current"]]

    def operation(self, name, version, operation, body):
        found = self.find(name, version)
        if isinstance(found, tuple):
            return found
        if body.get("alg") != "RSA-OAEP-256":
            return kv_error(400, "BadParameter", "This mock supports alg RSA-OAEP-256 only.")
        value = body.get("value")
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]*=*", value):
            return kv_error(400, "BadParameter", "Content of 'value' is not base64url.")
        data = b64url_decode(value)
        if not found["enabled"]:
            verb = "wrapKey" if operation == "wrapkey" else "unwrapKey"
            return kv_error(403, "Forbidden", f"Operation {verb} is not allowed on a disabled key.",
                            "KeyDisabled")
        if operation == "wrapkey":
            result = found["private"].public_key().encrypt(data, OAEP_256)
        else:
            try:
                result = found["private"].decrypt(data, OAEP_256)
            except ValueError:
                return kv_error(400, "BadParameter", "Error occurred while decoding OAEP padding.")
        return 200, {"kid": self.kid(name, version), "value": b64url_encode(result)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--static-token", required=True)
    args = parser.parse_args()
    AzureHandler.client_secret = args.client_secret
    state = State()
    state.add_static(args.static_token, RESOURCE)
    serve(AzureHandler, args.port, state)


if __name__ == "__main__":
    main()
