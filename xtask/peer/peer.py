#!/usr/bin/env python3
"""Command-line peer over the Python reference implementation of spiffile.

Used by `cargo xtask` as a subprocess for the live interoperability matrix.
Every command prints exactly one line of JSON on stdout:

    success      {"ok": true, ...}                                   exit 0
    failure      {"ok": false, "error_type": "<Class>", "error": "..."}   exit 1
    usage error  {"ok": false, "error_type": "UsageError", "error": "..."} exit 2

Library log output (for example "skipping invalid bundle entry") goes to
stderr and never to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as JSON and exits 2."""

    def error(self, message: str):  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None):  # type: ignore[override]
        # Reached for --help; keep the help text on stderr.
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)

    def print_help(self, file=None):  # type: ignore[override]
        super().print_help(sys.stderr)


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="peer.py", description="spiffile Python reference peer")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    sub.required = True

    c = sub.add_parser("init", help="init_root(ROOT, TRUST_DOMAIN)")
    c.add_argument("root")
    c.add_argument("trust_domain")

    c = sub.add_parser("add", help="add_service(ROOT, NAME) for each NAME")
    c.add_argument("root")
    c.add_argument("names", nargs="+", metavar="NAME")

    c = sub.add_parser("rotate", help="rotate_service(ROOT, NAME, keep_old=not --drop-old)")
    c.add_argument("root")
    c.add_argument("name")
    c.add_argument("--drop-old", action="store_true")

    c = sub.add_parser("remove", help="remove_service(ROOT, NAME)")
    c.add_argument("root")
    c.add_argument("name")

    c = sub.add_parser("env", help="service_env(ROOT, NAME)")
    c.add_argument("root")
    c.add_argument("name")

    def files(cmd: argparse.ArgumentParser) -> None:
        cmd.add_argument("--id-file", required=True)
        cmd.add_argument("--key-file", required=True)
        cmd.add_argument("--bundle-file", required=True)

    c = sub.add_parser("token", help="Identity.from_files(...).token(AUD, ttl=N)")
    files(c)
    c.add_argument("--audience", required=True)
    c.add_argument("--ttl", type=int, default=None)

    c = sub.add_parser("verify", help="Identity.from_files(...).verify(TOKEN, audience=AUD)")
    files(c)
    c.add_argument("token", help="the token, or '-' to read it from stdin (argv is capped at 128 KiB)")
    c.add_argument("--audience", default=None)
    c.add_argument("--leeway", type=float, default=None)

    c = sub.add_parser(
        "bench-verify",
        help="time Identity.verify(TOKEN) in-process; prints microseconds per call",
    )
    files(c)
    c.add_argument("--token-file", required=True)
    c.add_argument("--n", type=int, default=1000, help="calls per round")
    c.add_argument("--rounds", type=int, default=5)

    c = sub.add_parser(
        "bench-mint",
        help="time Identity.token(AUD) in-process; prints microseconds per call",
    )
    files(c)
    c.add_argument("--audience", required=True)
    c.add_argument("--n", type=int, default=1000, help="calls per round")
    c.add_argument("--rounds", type=int, default=5)

    sub.add_parser("version", help="installed spiffile version")
    return p


def _time_rounds(call, n: int, rounds: int) -> dict:
    """Times `call` n times per round (after one warm-up round of n // 10),
    with time.perf_counter; reports microseconds per call."""
    import time

    if n < 1 or rounds < 1:
        raise _UsageError("--n and --rounds must be at least 1")
    for _ in range(max(1, n // 10)):
        call()
    per_round = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            call()
        per_round.append((time.perf_counter() - start) / n * 1e6)
    per_round.sort()
    return {
        "n": n,
        "rounds": rounds,
        "min_us": per_round[0],
        "median_us": per_round[len(per_round) // 2],
        "rounds_us": per_round,
    }


def _bundle_kids(root, spiffe_id: str) -> list[str]:
    from pathlib import Path

    doc = json.loads((Path(root) / "bundle.json").read_text())
    return [k.get("kid") for k in doc["identities"].get(spiffe_id, {}).get("keys", [])]


def _run(args: argparse.Namespace) -> dict:
    # Imported lazily so a missing/broken install is reported as JSON too.
    from spiffile import Identity, provision

    cmd = args.command
    if cmd == "init":
        root = provision.init_root(args.root, args.trust_domain)
        return {"ok": True, "root": str(root), "trust_domain": args.trust_domain}
    if cmd == "add":
        ids = [str(provision.add_service(args.root, name)) for name in args.names]
        return {"ok": True, "ids": ids}
    if cmd == "rotate":
        spiffe_id = str(provision.rotate_service(args.root, args.name, keep_old=not args.drop_old))
        return {"ok": True, "id": spiffe_id, "kids": _bundle_kids(args.root, spiffe_id)}
    if cmd == "remove":
        provision.remove_service(args.root, args.name)
        return {"ok": True}
    if cmd == "env":
        return {"ok": True, "env": provision.service_env(args.root, args.name)}
    if cmd == "token":
        identity = Identity.from_files(args.id_file, args.key_file, args.bundle_file)
        kwargs = {} if args.ttl is None else {"ttl": args.ttl}
        return {"ok": True, "token": identity.token(args.audience, **kwargs)}
    if cmd == "verify":
        identity = Identity.from_files(args.id_file, args.key_file, args.bundle_file)
        kwargs = {} if args.leeway is None else {"leeway": args.leeway}
        token = sys.stdin.read().strip() if args.token == "-" else args.token
        caller = identity.verify(token, audience=args.audience, **kwargs)
        return {"ok": True, "caller": str(caller.id), "claims": caller.claims}
    if cmd == "bench-verify":
        identity = Identity.from_files(args.id_file, args.key_file, args.bundle_file)
        with open(args.token_file, encoding="utf-8") as f:
            token = f.read().strip()
        identity.verify(token)  # must succeed before it is timed
        return {"ok": True, **_time_rounds(lambda: identity.verify(token), args.n, args.rounds)}
    if cmd == "bench-mint":
        identity = Identity.from_files(args.id_file, args.key_file, args.bundle_file)
        audience = args.audience
        return {"ok": True, **_time_rounds(lambda: identity.token(audience), args.n, args.rounds)}
    if cmd == "version":
        from importlib.metadata import version

        return {
            "ok": True,
            "version": version("spiffile"),
            "pyjwt": version("PyJWT"),
            "cryptography": version("cryptography"),
            "python": sys.version.split()[0],
        }
    raise _UsageError(f"unknown command {cmd!r}")


def main(argv: list[str] | None = None) -> int:
    try:
        args = _build_parser().parse_args(argv)
    except _UsageError as e:
        _emit({"ok": False, "error_type": "UsageError", "error": str(e)})
        return EXIT_USAGE
    try:
        result = _run(args)
    except _UsageError as e:
        _emit({"ok": False, "error_type": "UsageError", "error": str(e)})
        return EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - every failure becomes a JSON report
        _emit({"ok": False, "error_type": type(e).__name__, "error": str(e)})
        return EXIT_ERROR
    _emit(result)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
