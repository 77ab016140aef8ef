"""The long run of tests/core/test_injection.py: 100,000 generated messages with hostile
values in every header-bearing field, each down the three paths (``message().as_bytes()``,
``mailcore.wire.serialize()``, an SMTP send to a real server on 127.0.0.1 over the pipelined,
the one-at-a-time and Django's sendmail() paths in turn), judged by what a reader sees
(tests/core/injection_oracle.py: same headers, same values, same envelope, or a ValueError /
TypeError). Unlike the test, it does not stop at the first injection: it counts them all.

Run from the repository root:

    .venv/bin/python scripts/fuzz_headers.py                 # 100,000 examples, one process
    .venv/bin/python scripts/fuzz_headers.py -n 20000 --jobs 2 --seed 7
    .venv/bin/python scripts/fuzz_headers.py --django        # also judge Django 5.2's bytes

It prints, and with ``--json FILE`` writes, the figures: examples, outcomes per path,
injections found (with the first few inputs), unexpected exception types, and time. The exit
status is 1 if any injection or unexpected exception was found. About 4 ms an example on
one core (7 minutes for 100,000); ``--jobs`` runs that many processes, each with its own
servers and its own share of the examples.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _django() -> Any:
    import django
    from django.conf import settings as django_settings

    if not django_settings.configured:
        django_settings.configure(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
                                  USE_TZ=True, SECRET_KEY="fuzz")  # noqa: S106 - not a secret
        django.setup()
    from django.core import mail

    return mail


def _judge_django(mail: Any, spec: dict) -> str:
    """What the same inputs give with Django 5.2 (message() only): ok, refused, injection or
    unexpected, by the same oracle."""
    from tests.core import injection_oracle as oracle

    try:
        msg = oracle.build(spec, mail)
        raw = msg.message().as_bytes(linesep="\r\n")
    except Exception as exc:  # noqa: BLE001 - the exception is the outcome
        return oracle._caught("django", exc).kind
    return "injection" if oracle.problems_in(spec, raw) else "ok"


def run(examples: int, seed: int, with_django: bool) -> dict:
    """One process's share: its own servers, backends and hypothesis seed."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    from tests.core import injection_oracle as oracle
    from tests.support.servers import SMTPServer

    mail = _django() if with_django else None
    counts: Counter = Counter()
    unexpected: Counter = Counter()
    samples: list[dict] = []
    strategy = st.one_of(oracle.specs, oracle.envelopes,
                         *[oracle.one_field(name) for name in sorted(oracle.FIELDS)])
    with SMTPServer("plain", pipelining=True) as piped, SMTPServer("plain") as plain:
        senders = oracle.open_senders(piped, plain)

        @hypothesis_seed(seed)
        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(spec=strategy, path=st.sampled_from(sorted(senders)))
        def check(spec: dict, path: str) -> None:
            backend, server = senders[path]
            outcomes = oracle.judge(spec, backend, server)
            counts["examples"] += 1
            counts[f"send path {path}"] += 1
            bad = False
            for o in outcomes:
                counts[f"{o.path} {o.kind}"] += 1
                if o.kind == "unexpected":
                    unexpected[f"{o.path}: {type(o.exception).__name__}"] += 1
                bad = bad or o.kind in ("injection", "unexpected")
            if bad:
                counts["examples with an injection or unexpected exception"] += 1
                if len(samples) < 20:
                    samples.append({"spec": repr(spec), "outcomes": [str(o) for o in outcomes]})
            if mail is not None:
                counts[f"django {_judge_django(mail, spec)}"] += 1
            if counts["examples"] % 5000 == 0:
                print(f"  [{seed}] {counts['examples']} examples", file=sys.stderr, flush=True)

        check()
        for backend, _server in senders.values():
            backend.close()
    return {"counts": dict(counts), "unexpected": dict(unexpected), "samples": samples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--examples", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--django", action="store_true", help="judge Django's bytes too")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)

    start = time.monotonic()
    shares = [args.examples // args.jobs + (i < args.examples % args.jobs)
              for i in range(args.jobs)]
    if args.jobs == 1:
        results = [run(shares[0], args.seed, args.django)]
    else:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(run, shares, [args.seed + i for i in range(args.jobs)],
                                    [args.django] * args.jobs))
    elapsed = time.monotonic() - start

    counts: Counter = Counter()
    unexpected: Counter = Counter()
    samples: list[dict] = []
    for result in results:
        counts.update(result["counts"])
        unexpected.update(result["unexpected"])
        samples.extend(result["samples"])
    injections = sum(v for k, v in counts.items()
                     if k.endswith(" injection") and not k.startswith("django"))
    figures = {
        "examples": counts["examples"],
        "seconds": round(elapsed, 1),
        "examples per second": round(counts["examples"] / elapsed, 1),
        "injections found": injections,
        "unexpected exceptions": sum(unexpected.values()),
        "unexpected exception types": dict(unexpected),
        "outcomes": {k: v for k, v in sorted(counts.items()) if k != "examples"},
        "first failing inputs": samples[:10],
    }
    print(f"examples: {figures['examples']:,} in {figures['seconds']} s "
          f"({figures['examples per second']} a second, {args.jobs} process(es))")
    print(f"injections found: {injections}")
    print(f"unexpected exceptions: {figures['unexpected exceptions']} "
          f"{dict(unexpected) if unexpected else ''}")
    for key, value in figures["outcomes"].items():
        print(f"  {key}: {value:,}")
    for sample in samples[:5]:
        print("failing input:", sample["spec"][:500])
        for line in sample["outcomes"]:
            print("   ", line[:300])
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
    return 1 if injections or unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
