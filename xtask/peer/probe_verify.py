"""Probe the Python reference verifier with crafted tokens and bundles.

Run with the venv python: target/conformance-venv/bin/python xtask/peer/probe_verify.py
Prints one ACCEPT/REJECT line per case (the README records the results).
"""
import json, os, sys, time, base64, subprocess, copy, tempfile, logging
from pathlib import Path
import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HERE = Path(__file__).resolve().parent
PEER = str(HERE / "peer.py")
FX = json.load(open(HERE.parents[1] / "conformance" / "fixtures.json"))
D = Path(tempfile.mkdtemp(prefix="probe-"))

def peer(*args):
    inp = None
    if len(args[-1]) > 100_000:
        inp, args = args[-1], (*args[:-1], "-")
    r = subprocess.run([sys.executable, PEER, *args], capture_output=True, text=True, input=inp)
    return r.returncode, json.loads(r.stdout), r.stderr.strip()

def setup(bundle=None, name="billing"):
    d = Path(tempfile.mkdtemp(dir=D))
    (d / "bundle.json").write_text(json.dumps(bundle if bundle is not None else FX["bundle"]))
    (d / "id").write_text(f"spiffe://example.org/{name}\n")
    (d / "key.pem").write_text(FX[f"{name}_private_key_pem"])
    return d

def verify(d, tok, *extra):
    return peer("verify", "--id-file", str(d/"id"), "--key-file", str(d/"key.pem"), "--bundle-file", str(d/"bundle.json"), *extra, tok)

def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
okey = serialization.load_pem_private_key(FX["orders_private_key_pem"].encode(), None)
bkey = serialization.load_pem_private_key(FX["billing_private_key_pem"].encode(), None)
OKID = FX["orders_jwk"]["kid"]
now = int(time.time())
def raw(header, claims, key=okey, sig=None):
    h = b64(header if isinstance(header, bytes) else json.dumps(header, separators=(",",":")).encode())
    c = b64(claims if isinstance(claims, bytes) else json.dumps(claims, separators=(",",":")).encode())
    si = f"{h}.{c}".encode()
    if sig is None:
        der = key.sign(si, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        sig = b64(r.to_bytes(32,"big")+s.to_bytes(32,"big"))
    return f"{h}.{c}.{sig}"
H = {"alg":"ES256","kid":OKID,"typ":"JWT"}
C = {"sub":"spiffe://example.org/orders","aud":"spiffe://example.org/billing","iat":now,"exp":now+60}

def case(label, res):
    rc, out, err = res
    summary = "ACCEPT" if out.get("ok") else f"REJECT {out.get('error_type')}: {out.get('error')}"
    print(f"- {label}: rc={rc} {summary}" + (f"  [stderr: {err.splitlines()[-1][:150]}]" if err else ""))

d = setup()
case("fixture token_orders_to_billing_exp_2035 as billing", verify(d, FX["token_orders_to_billing_exp_2035"]))
print("   ", verify(d, FX["token_orders_to_billing_exp_2035"])[1])
do = setup(name="orders")
case("fixture token as orders (default aud)", verify(do, FX["token_orders_to_billing_exp_2035"]))
case("fixture token as orders with --audience billing", verify(do, FX["token_orders_to_billing_exp_2035"], "--audience", "spiffe://example.org/billing"))
case("fixture multi-aud token as billing", verify(d, FX["token_orders_to_billing_multi_aud_exp_2035"]))
for k in ("token_orders_to_billing_exp_2035","token_orders_to_billing_multi_aud_exp_2035"):
    h,c,_ = FX[k].split(".")
    print("   ", k, base64.urlsafe_b64decode(h+"=="*2)[:200], base64.urlsafe_b64decode(c+"=="*2)[:300])
case("baseline crafted", verify(d, raw(H, C)))
case("no kid", verify(d, raw({"alg":"ES256","typ":"JWT"}, C)))
case("wrong kid (fallback to all bound keys)", verify(d, raw({**H,"kid":"nope"}, C)))
case("typ=foo", verify(d, raw({**H,"typ":"foo"}, C)))
case("no typ", verify(d, raw({"alg":"ES256","kid":OKID}, C)))
case("extra header jku", verify(d, raw({**H,"jku":"https://evil"}, C)))
case("crit [x-unknown]", verify(d, raw({**H,"crit":["x-unknown"],"x-unknown":1}, C)))
case("alg ES384 header", verify(d, raw({**H,"alg":"ES384"}, C)))
case("alg none", verify(d, raw({"alg":"none","kid":OKID}, C, sig="")))
case("aud list single", verify(d, raw(H, {**C,"aud":["spiffe://example.org/billing"]})))
case("no aud", verify(d, raw(H, {k:v for k,v in C.items() if k!="aud"})))
case("no exp", verify(d, raw(H, {k:v for k,v in C.items() if k!="exp"})))
case("no sub", verify(d, raw(H, {k:v for k,v in C.items() if k!="sub"})))
case("no iat", verify(d, raw(H, {k:v for k,v in C.items() if k!="iat"})))
case("exp as string", verify(d, raw(H, {**C,"exp":str(now+60)})))
case("exp as float", verify(d, raw(H, {**C,"exp":now+60.5})))
case("exp as bool true", verify(d, raw(H, {**C,"exp":True})))
case("exp 20s ago (leeway 30)", verify(d, raw(H, {**C,"exp":now-20})))
case("exp 40s ago", verify(d, raw(H, {**C,"exp":now-40})))
case("iat 20s future", verify(d, raw(H, {**C,"iat":now+20})))
case("iat 100s future", verify(d, raw(H, {**C,"iat":now+100})))
case("nbf 100s future", verify(d, raw(H, {**C,"nbf":now+100})))
case("ttl 10 years", verify(d, raw(H, {**C,"exp":now+10*365*86400})))
case("malformed sub", verify(d, raw(H, {**C,"sub":"spiffe://example.org/bad~x"})))
case("sub not in bundle", verify(d, raw(H, {**C,"sub":"spiffe://example.org/ghost"})))
case("sub other trust domain", verify(d, raw(H, {**C,"sub":"spiffe://other.org/orders"})))
case("sub signed by billing key (not bound)", verify(d, raw({**H,"kid":FX["billing_jwk"]["kid"]}, C, key=bkey)))
case("1 MB extra claim", verify(d, raw(H, {**C,"pad":"A"*1_000_000})))
case("duplicate sub in claims (last wins?)", verify(d, raw(H, b'{"sub":"spiffe://example.org/billing","sub":"spiffe://example.org/orders","aud":"spiffe://example.org/billing","exp":%d}' % (now+60))))
case("duplicate alg in header", verify(d, raw(b'{"alg":"none","alg":"ES256","kid":"%s"}' % OKID.encode(), C)))
der = okey.sign((raw(H,C).rsplit(".",1)[0]).encode(), ec.ECDSA(hashes.SHA256()))
case("DER signature", verify(d, raw(H, C, sig=b64(der))))
# bundle variants
B = FX["bundle"]
def bv(label, mut):
    b = copy.deepcopy(B); mut(b); case("bundle: "+label, verify(setup(b), raw(H, C)))
bv("extra top-level member", lambda b: b.update({"extra":1, "spiffe_refresh_hint": 5}))
bv("extra member in identity entry", lambda b: b["identities"]["spiffe://example.org/orders"].update({"spiffe_sequence":3}))
bv("extra member in JWK", lambda b: b["identities"]["spiffe://example.org/orders"]["keys"][0].update({"x5c":[], "foo":"bar"}))
bv("spiffile_version '1'", lambda b: b.update({"spiffile_version":"1"}))
bv("spiffile_version 1.0", lambda b: b.update({"spiffile_version":1.0}))
bv("spiffile_version true", lambda b: b.update({"spiffile_version":True}))
bv("spiffile_version 2", lambda b: b.update({"spiffile_version":2}))
bv("no trust_domain", lambda b: b.pop("trust_domain"))
bv("identities is a list", lambda b: b.update({"identities":[]}))
bv("orders entry in other td (skipped)", lambda b: b["identities"].update({"spiffe://other.org/x": b["identities"]["spiffe://example.org/orders"]}))
bv("malformed extra entry", lambda b: b["identities"].update({"spiffe://example.org/bad~": {"keys": []}}))
bv("JWK without kid", lambda b: b["identities"]["spiffe://example.org/orders"]["keys"][0].pop("kid"))
bv("JWK without use/alg", lambda b: [b["identities"]["spiffe://example.org/orders"]["keys"][0].pop(k) for k in ("use","alg")])
bv("JWK use=sig", lambda b: b["identities"]["spiffe://example.org/orders"]["keys"][0].update({"use":"sig"}))
bv("JWK alg=ES384", lambda b: b["identities"]["spiffe://example.org/orders"]["keys"][0].update({"alg":"ES384"}))
dval = b64(okey.private_numbers().private_value.to_bytes(32,"big"))
bv("JWK carries private d", lambda b: b["identities"]["spiffe://example.org/orders"]["keys"][0].update({"d":dval}))
bv("bad JWK first + good JWK second", lambda b: b["identities"]["spiffe://example.org/orders"]["keys"].insert(0, {"kty":"EC","crv":"P-256","x":"AA","y":"AA","kid":OKID}))
bv("identity keys empty", lambda b: b["identities"]["spiffe://example.org/orders"].update({"keys":[]}))
