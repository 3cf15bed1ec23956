#!/usr/bin/env bash
# Probe the Python reference provisioning (modes, ordering, remove, strace of writes).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-$HERE/../../target/conformance-venv/bin/python}
P="$PY $HERE/peer.py"
R=$(mktemp -d)/root
$P init $R example.org; echo "--- empty bundle:"; cat -A $R/bundle.json
$P add $R orders billing >/dev/null
ino1=$(stat -c %i $R/bundle.json)
K1=$(sha256sum $R/services/orders/key.pem)
$P add $R orders
echo "re-add keeps key: $([ "$K1" = "$(sha256sum $R/services/orders/key.pem)" ] && echo yes || echo no)"
echo "--- rotate keep:"; $P rotate $R orders; 
echo "bundle inode same after writes: $([ $ino1 = $(stat -c %i $R/bundle.json) ] && echo yes-in-place || echo no)"
echo "--- rotate keep again:"; $P rotate $R orders
echo "--- rotate drop:"; $P rotate $R orders --drop-old
python3 -c "import json;print('identity order:', list(json.load(open('$R/bundle.json'))['identities']))"
echo "--- rotate unknown:"; $P rotate $R ghost
echo "--- remove orders:"; $P remove $R orders; ls -la $R/services; python3 -c "import json;print('identity order:', list(json.load(open('$R/bundle.json'))['identities']))"
echo "--- remove unknown:"; $P remove $R ghost
echo "--- re-add orders:"; $P add $R orders; python3 -c "import json;print('identity order:', list(json.load(open('$R/bundle.json'))['identities']))"
echo "--- remove with extra file in dir:"; touch $R/services/billing/extra; $P remove $R billing; ls -la $R/services/billing; python3 -c "import json;print('identity order:', list(json.load(open('$R/bundle.json'))['identities']))"
echo "--- nested name a/b:"; $P add $R a/b; find $R/services -maxdepth 3 | sort
echo "--- bad names:"; $P add $R ''; $P add $R '..'; $P add $R 'x~'; $P add $R 'A.B'
echo "--- add to uninitialized root:"; $P add $(mktemp -d) x
echo "--- init invalid trust domain:"; R2=$(mktemp -d)/r2; $P init $R2 Example.ORG; cat $R2/bundle.json; $P add $R2 x
echo "--- init into existing dir w/o bundle:"; R3=$(mktemp -d); $P init $R3 example.org
echo "--- key pem header:"; head -1 $R/services/orders/key.pem
echo "--- token invalid audience:"; $P token --id-file $R/services/orders/id --key-file $R/services/orders/key.pem --bundle-file $R/bundle.json --audience 'spiffe://example.org/'
echo "--- token ttl -5 / 100000:"; for t in -5 100000; do $P token --id-file $R/services/orders/id --key-file $R/services/orders/key.pem --bundle-file $R/bundle.json --audience spiffe://example.org/billing --ttl $t | python3 -c 'import json,sys,base64;t=json.load(sys.stdin)["token"].split(".")[1];c=json.loads(base64.urlsafe_b64decode(t+"=="));print(c["exp"]-c["iat"])'; done
echo "--- token with env pointing at missing key:"; $P token --id-file $R/services/orders/id --key-file /nonexistent --bundle-file $R/bundle.json --audience spiffe://example.org/billing
echo "--- strace key write/chmod:"
R4=$(mktemp -d)/r4; $P init $R4 example.org >/dev/null
strace -f -e trace=openat,chmod,fchmod,fchmodat,rename,renameat,renameat2,mkdir -o $(dirname $R4)/strace.txt $PY $HERE/peer.py add $R4 svc >/dev/null
grep -E "r4/(services|bundle)" $(dirname $R4)/strace.txt | grep -v ENOENT | sed 's/^[0-9]* //'
