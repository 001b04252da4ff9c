#!/usr/bin/env python3
"""Writes kat.json: known-answer JWE vectors made by an independent JOSE implementation
(python-jwcrypto on pyca/cryptography), one per (key algorithm, content algorithm) that Go
ocicrypt accepts, in JSON serialization (flattened, as go-jose writes for one recipient), with the private key as a
JWK. Run: pip install jwcrypto==1.6.1 && python3 make-kat.py > kat.json
The vectors are committed; regenerating them changes every byte (random keys and IVs)."""
import json

from jwcrypto import jwe, jwk
from jwcrypto.common import json_encode

KEY_ALGS = {
    "RSA-OAEP": ("RSA", 2048),
    "RSA-OAEP-256": ("RSA", 3072),
    "ECDH-ES+A128KW": ("EC", "P-256"),
    "ECDH-ES+A192KW": ("EC", "P-384"),
    "ECDH-ES+A256KW": ("EC", "P-521"),
}
ENCS = ["A128GCM", "A192GCM", "A256GCM", "A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512"]

keys = {}
for alg, (kty, size) in KEY_ALGS.items():
    if kty == "RSA":
        keys[alg] = jwk.JWK.generate(kty="RSA", size=size)
    else:
        keys[alg] = jwk.JWK.generate(kty="EC", crv=size)

vectors = []
for alg, key in keys.items():
    for enc in ENCS:
        plaintext = json.dumps({"symkey": "KAT", "alg": alg, "enc": enc}, separators=(",", ":"))
        token = jwe.JWE(plaintext.encode(), protected=json_encode({"enc": enc}))
        token.add_recipient(key, header=json_encode({"alg": alg}))
        vectors.append({
            "alg": alg,
            "enc": enc,
            "jwk": json.loads(key.export_private()),
            "jwe": json.loads(token.serialize(compact=False)),
            "plaintext": plaintext,
        })
print(json.dumps({"generator": "python-jwcrypto", "vectors": vectors}, indent=1))
