"""The gateway's signature checks, done beside its ingest thread.

The ingest thread hands a chunk's signatures to a verifier (``submit``), finishes the previous
chunk meanwhile, then collects the verdicts (``collect``), strictly in the order submitted. Two
verifiers give the same verdicts:

* :class:`GoVerifier`: ``citychain-sigverify`` (``tools/sigverify``, Go, built into ``.bin/``
  by ``scripts/install_sigverify.sh``), a child process fed through a pipe. It verifies exactly
  as libsodium does (canonical S, A and R; no small-order A or R; the cofactorless equation)
  with curve25519-voi, which is cheaper per signature than libsodium's portable code;
* :class:`PoolVerifier`: PyNaCl in ``processes`` Python processes (PyNaCl holds the GIL while
  it verifies, so only another process adds a core).

:func:`open_verifier` picks one: ``go``, ``python``, or ``auto`` (Go when the binary is found).
Either checks itself on a known good and a known bad signature when it starts.

The Go verifier, given the chain id, also takes :class:`ReadingJob`: a reading's wire payload
instead of its signed bytes. It builds the signed bytes and the reading id itself (the ingest
thread then encodes neither) and returns the id with the verdict (``Pending.reading_ids``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import struct
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TypeGuard

from citychain.core.crypto import PrivateKey, domain_bytes, verify_signature
from citychain.iot.reading import READING_DOMAIN, Reading, sign_reading
from citychain.node.tools import find_tool, tool_candidates

log = logging.getLogger(__name__)

#: (public key, signed bytes, signature)
SignatureJob = tuple[bytes, bytes, bytes]


class ReadingJob(NamedTuple):
    """A reading's signature to check from its wire payload (in :meth:`Reading.to_json`'s exact
    form): the verifier builds the signed bytes and computes the reading id. Only a verifier
    whose ``encodes_readings`` is set takes it."""

    pubkey: bytes
    payload: bytes
    signature: bytes


Job = SignatureJob | ReadingJob

SIGVERIFY = "citychain-sigverify"
SIGVERIFY_ENV = "CITYCHAIN_SIGVERIFY"
VERIFIERS = ("auto", "go", "python")

_SELF_TEST_KEY = PrivateKey.from_secret("citychain-sigverify/self-test")
_SELF_TEST_MESSAGE = b"citychain-sigverify self-test"
READING_FLAG = 1 << 31  # in a job's message length: the message is a reading's wire payload
NOT_A_READING = 2       # the binary's answer to a reading job whose payload it cannot read


class VerifierError(Exception):
    """The verifier cannot be started, or stopped working (the gateway then verifies in its
    ingest thread)."""


def _forged(signature: bytes) -> bytes:
    return bytes([signature[0] ^ 1]) + signature[1:]


def _self_test_jobs() -> list[SignatureJob | None]:
    signature = _SELF_TEST_KEY.sign(_SELF_TEST_MESSAGE)
    return [(_SELF_TEST_KEY.public_key, _SELF_TEST_MESSAGE, signature), None,
            (_SELF_TEST_KEY.public_key, _SELF_TEST_MESSAGE, _forged(signature))]


def verify_signatures(jobs: list[SignatureJob | None]) -> list[bool | None]:
    """:func:`verify_signature` of each job (None stays None)."""
    return [None if job is None else verify_signature(*job) for job in jobs]


@dataclass
class Pending:
    """Verdicts under way; :meth:`SignatureVerifier.collect` returns them."""

    # PoolVerifier: the caller's own share (checked at collect), then the processes' shares.
    own: list[SignatureJob | None] = field(default_factory=list)
    futures: list[Future[list[bool | None]]] = field(default_factory=list)
    # GoVerifier: the request's number, its jobs, and which of them went to the binary.
    ticket: int = 0
    jobs: list[Job | None] = field(default_factory=list)
    sent: list[bool] = field(default_factory=list)
    # Set by collect: the id of each reading job the verifier read (None for the others).
    reading_ids: list[bytes | None] = field(default_factory=list)


class SignatureVerifier(ABC):
    """Verdicts of signature jobs, computed beside the caller, collected in submit order."""

    name = ""
    encodes_readings = False  # takes ReadingJob

    @abstractmethod
    def submit(self, jobs: list[Job | None], *,
               share_here: bool = False) -> Pending:
        """Start checking ``jobs`` (None: no signature to check, its verdict is None; a
        :class:`ReadingJob` only when ``encodes_readings``).
        ``share_here``: the caller is idle until it collects, so it may verify a share itself.

        Raises:
            VerifierError: the verifier stopped.
        """

    @abstractmethod
    def collect(self, pending: Pending) -> list[bool | None]:
        """The verdicts of ``pending``, one per job (None also for a reading job whose payload
        the verifier could not read: check it yourself); call in the order of ``submit``.

        Raises:
            VerifierError: the verifier stopped.
        """

    @abstractmethod
    def close(self) -> None:
        """Stop the helper processes."""

    def self_test(self) -> None:
        """Check a good and a forged signature.

        Raises:
            VerifierError: the verdicts are wrong.
        """
        verdicts = self.collect(self.submit(_self_test_jobs()))
        if verdicts != [True, None, False]:
            self.close()
            raise VerifierError(f"{self.name} failed its self-test: {verdicts} "
                                "(expected [True, None, False])")


def _exit_with_parent(parent: int) -> None:
    """In a pool process: exit once the gateway process is gone (killed, say), which the pool
    cannot tell it."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)
    threading.Thread(target=watch, name="iot-verifier-watch", daemon=True).start()


class PoolVerifier(SignatureVerifier):
    """PyNaCl in ``processes`` Python processes; each job list is split evenly among them (and
    the caller, when it shares)."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.name = f"PyNaCl in {processes} process{'es' if processes > 1 else ''}"
        self._pool = ProcessPoolExecutor(processes,
                                         mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_exit_with_parent,
                                         initargs=(os.getpid(),))

    def submit(self, jobs: list[Job | None], *,
               share_here: bool = False) -> Pending:
        if any(isinstance(job, ReadingJob) for job in jobs):
            raise TypeError(f"{self.name} does not take reading jobs")
        pending = Pending()
        if not jobs:
            return pending
        size = -(-len(jobs) // (self.processes + share_here))
        slices: list[list[SignatureJob | None]] = [
            jobs[i:i + size] for i in range(0, len(jobs), size)]
        if share_here:
            pending.own = slices.pop(0)
        try:
            pending.futures = [self._pool.submit(verify_signatures, part) for part in slices]
        except (BrokenExecutor, RuntimeError) as exc:
            raise VerifierError(f"{self.name} stopped: {exc}") from exc
        return pending

    def collect(self, pending: Pending) -> list[bool | None]:
        valid = verify_signatures(pending.own)
        try:
            for future in pending.futures:
                valid.extend(future.result())
        except BrokenExecutor as exc:
            raise VerifierError(f"{self.name} stopped: {exc}") from exc
        return valid

    def close(self) -> None:
        self._pool.shutdown()


_HEADER = struct.Struct("<I")


def _well_formed(job: Job | None) -> TypeGuard[Job]:
    """A job the binary can take: a 32-byte key and a 64-byte signature (any other is invalid
    without asking)."""
    return job is not None and len(job[0]) == 32 and len(job[2]) == 64


class GoVerifier(SignatureVerifier):
    """``citychain-sigverify`` in a child process: requests on its stdin, answers (a byte per
    signature) on its stdout, in order. It reads ahead, so a submit never waits for the checks
    of the chunk before."""

    def __init__(self, binary: Path, workers: int = 1, key_cache: int | None = None,
                 chain_id: str | None = None) -> None:
        """``key_cache``: public keys the binary keeps expanded (None: its default, 16,384).
        ``chain_id``: the chain whose readings it may be given as :class:`ReadingJob`."""
        self.binary = binary
        self.name = f"{SIGVERIFY} ({binary})"
        self.chain_id = chain_id
        self.encodes_readings = chain_id is not None
        extra = [] if key_cache is None else ["-key-cache", str(key_cache)]
        if chain_id is not None:
            extra += ["-reading-prefix", domain_bytes(READING_DOMAIN, chain_id, b"").hex()]
        try:
            self._process = subprocess.Popen(
                [str(binary), "-workers", str(workers), *extra], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        except OSError as exc:
            raise VerifierError(f"cannot start {binary}: {exc}") from exc
        self._submitted = 0
        self._collected = 0

    def self_test(self) -> None:
        """The signature self-test, then (given a chain id) a reading job: its verdict and the
        reading id it returns must be what this process computes, and a forged one invalid.

        Raises:
            VerifierError: a verdict or the id is wrong.
        """
        super().self_test()
        if self.chain_id is None:
            return
        good = sign_reading(_SELF_TEST_KEY, self.chain_id, "selftest", 7, 1_700_000_000_000, -5)
        bad = Reading(good.device, good.stream, good.seq, good.ts_ms, good.value,
                      _forged(good.sig))
        jobs: list[Job | None] = [
            ReadingJob(_SELF_TEST_KEY.public_key, r.to_json().encode(), r.sig) for r in (good, bad)]
        pending = self.submit(jobs)
        verdicts = self.collect(pending)
        if verdicts != [True, False] or pending.reading_ids != [good.reading_id, bad.reading_id]:
            self.close()
            raise VerifierError(f"{self.name} failed its reading self-test: {verdicts}, ids "
                                f"{[i.hex() if i else i for i in pending.reading_ids]} "
                                f"(expected [True, False], {good.reading_id.hex()}, "
                                f"{bad.reading_id.hex()})")

    def _stopped(self, exc: BaseException) -> VerifierError:
        code = self._process.poll()
        detail = ""
        if code is not None and self._process.stderr is not None:
            detail = self._process.stderr.read().decode(errors="replace").strip()[-300:]
        return VerifierError(f"{self.name} stopped ({exc}"
                             + (f"; exit code {code}" if code is not None else "")
                             + (f": {detail}" if detail else "") + ")")

    def submit(self, jobs: list[Job | None], *,
               share_here: bool = False) -> Pending:
        sent = [_well_formed(job) for job in jobs]
        parts = [_HEADER.pack(sum(sent))]
        for job, well_formed in zip(jobs, sent, strict=True):
            if well_formed:
                pubkey, message, signature = job  # type: ignore[misc]
                if type(job) is ReadingJob:
                    if not self.encodes_readings:
                        raise TypeError(f"{self.name} was started without a chain id: it "
                                        "takes no reading jobs")
                    parts += (pubkey, signature, _HEADER.pack(READING_FLAG | len(message)),
                              message)
                else:
                    parts += (pubkey, signature, _HEADER.pack(len(message)), message)
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(b"".join(parts))
        except OSError as exc:
            raise self._stopped(exc) from exc
        self._submitted += 1
        return Pending(ticket=self._submitted, jobs=jobs, sent=sent)

    def collect(self, pending: Pending) -> list[bool | None]:
        if pending.ticket != self._collected + 1:
            raise ValueError(f"collect out of order: request {pending.ticket}, "
                             f"expected {self._collected + 1}")
        readings = [sent and type(job) is ReadingJob
                    for job, sent in zip(pending.jobs, pending.sent, strict=True)]
        count = sum(pending.sent)
        wanted = count + 32 * sum(readings)
        assert self._process.stdout is not None
        answer = b""
        try:
            while len(answer) < wanted:
                more = self._process.stdout.read(wanted - len(answer))
                if not more:
                    raise EOFError("no answer")
                answer += more
        except (OSError, EOFError) as exc:
            raise self._stopped(exc) from exc
        self._collected += 1
        verdicts: list[bool | None] = []
        ids: list[bytes | None] = []
        at, id_at = 0, count
        for job, sent, reading in zip(pending.jobs, pending.sent, readings, strict=True):
            if job is None or not sent:
                verdicts.append(None if job is None else False)
                ids.append(None)
                continue
            verdict = answer[at]
            at += 1
            if reading:
                ids.append(None if verdict == NOT_A_READING else answer[id_at:id_at + 32])
                id_at += 32
            else:
                ids.append(None)
            verdicts.append(None if verdict == NOT_A_READING else verdict == 1)
        pending.reading_ids = ids
        return verdicts

    def close(self) -> None:
        for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)


def open_verifier(kind: str, processes: int,
                  chain_id: str | None = None) -> SignatureVerifier | None:
    """The verifier ``kind`` (``auto``, ``go`` or ``python``), self-tested; None when
    ``processes`` is 0 (the ingest thread then verifies each reading itself).

    ``processes`` is the number of Python processes, or of goroutines of the Go verifier.
    ``chain_id``: the Go verifier then also takes the chain's :class:`ReadingJob`.

    Raises:
        VerifierError: ``go`` was asked for and the binary is missing or broken, or a verifier
            failed its self-test.
        ValueError: an unknown ``kind``.
    """
    if kind not in VERIFIERS:
        raise ValueError(f"verifier must be one of {', '.join(VERIFIERS)}, got {kind!r}")
    if processes <= 0:
        return None
    if kind != "python":
        binary = find_tool(SIGVERIFY, SIGVERIFY_ENV)
        if binary is None and kind == "go":
            looked = ", ".join(str(path) for path in tool_candidates(SIGVERIFY, SIGVERIFY_ENV))
            raise VerifierError(f"{SIGVERIFY} not found (looked in {looked}); build it with "
                                f"scripts/install_sigverify.sh or set {SIGVERIFY_ENV}")
        if binary is not None:
            try:
                go = GoVerifier(binary, processes, chain_id=chain_id)
                go.self_test()
                return go
            except VerifierError as exc:
                if kind == "go":
                    raise
                log.error("%s; verifying with PyNaCl instead", exc)
    pool = PoolVerifier(processes)
    pool.self_test()
    return pool

