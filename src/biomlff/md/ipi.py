"""An i-PI client: serve any biomlff Potential to an i-PI server over its socket protocol.

i-PI (https://ipi-code.org) propagates the nuclei (PIMD, PIGLET, replica exchange, ...) and asks
clients for energies, forces and virials. The protocol, as documented in i-PI's manual
("Distributed execution → Communication protocol"), written here from that description:

* Every message starts with a 12-byte ASCII header, upper case, padded with spaces. Integers are
  4-byte (int32), floats 8-byte (float64), native byte order; all quantities in atomic units
  (bohr, hartree).
* ``STATUS`` (server → client) is answered with ``NEEDINIT`` (the client wants its initialisation
  string), ``READY`` (waiting for positions) or ``HAVEDATA`` (a result is waiting).
* ``INIT``: int32 bead/replica index, int32 length, that many bytes of initialisation string.
* ``POSDATA``: the cell matrix h (3 × 3 float64, lattice vectors as the *columns* of h, sent row by
  row), its inverse (3 × 3), int32 number of atoms N, 3N float64 positions (bohr).
* ``GETFORCE`` is answered with ``FORCEREADY``, float64 energy (hartree), int32 N, 3N float64
  forces (hartree/bohr), 3 × 3 float64 virial (hartree; −∂E/∂ε for a strain ε, i.e. Σ r ⊗ F for
  pair forces), int32 length and bytes of an "extra" string (JSON or empty).
* ``EXIT`` (or a closed connection) ends the client.

UNIX sockets are named ``/tmp/ipi_<address>`` by i-PI; TCP sockets are ``host:port``.

The model is evaluated with the same compiled pair-list machinery as biomlff's MD
(:class:`~biomlff.md.neighborlist.PairLists`, rebuilt only when atoms moved more than skin/2; the
cell may change between requests, e.g. in i-PI's NPT). i-PI sends no elements, so the client is
built for a structure whose atoms are in i-PI's order.
"""

from __future__ import annotations

import math
import socket
import sys
import time

import numpy as np

from .. import units
from ..errors import BiomlffError, ConfigError, ModelError

HDRLEN = 12
#: i-PI's prefix for UNIX-socket addresses
UNIX_PREFIX = "/tmp/ipi_"


class ProtocolError(BiomlffError):
    """The server sent something the i-PI protocol does not allow."""


def parse_address(address: str):
    """``'unix:NAME'`` → (AF_UNIX, '/tmp/ipi_NAME') (NAME containing '/' is used as the path);
    ``'HOST:PORT'`` → (AF_INET, (HOST, PORT)). Raises ConfigError for anything else."""
    text = str(address).strip()
    if text.lower().startswith("unix:"):
        name = text[5:]
        if not name:
            raise ConfigError("--address unix:NAME needs a socket name")
        return socket.AF_UNIX, name if "/" in name else UNIX_PREFIX + name
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"--address must be HOST:PORT or unix:NAME, got {address!r}")
    try:
        p = int(port)
    except ValueError as exc:
        raise ConfigError(f"--address {address!r}: port {port!r} is not an integer") from exc
    if not 0 < p < 65536:
        raise ConfigError(f"--address {address!r}: port must be between 1 and 65535")
    return socket.AF_INET, (host, p)


def header(text: str) -> bytes:
    """A 12-byte protocol header."""
    return text.upper().ljust(HDRLEN).encode("ascii")


def _recv_exact(sock, n: int) -> bytes:
    """Exactly n bytes from the socket; b'' if it closed before any byte; ProtocolError midway."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            if not buf:
                return b""
            raise ProtocolError(f"connection closed in the middle of a message ({len(buf)} of {n} bytes)")
        buf.extend(chunk)
    return bytes(buf)


def _recv_array(sock, dtype, count: int) -> np.ndarray:
    dt = np.dtype(dtype)
    data = _recv_exact(sock, dt.itemsize * count)
    if len(data) != dt.itemsize * count:
        raise ProtocolError("connection closed while receiving data")
    return np.frombuffer(data, dtype=dt, count=count)


class IPIClient:
    """Energies, forces and virials of ``potential`` for i-PI requests.

    periodic: use the cell i-PI sends (minimum image) — otherwise the system is in free space and
    the cell is ignored. precision: 'float64' | 'float32' | None (the potential's own, else
    float64). skin (Å), capacity_multiplier: pair-list head-room as in MD."""

    def __init__(
        self,
        potential,
        periodic: bool = False,
        precision: str | None = None,
        skin: float = 0.5,
        capacity_multiplier: float = 1.25,
    ):
        from ..precision import resolve_precision

        precision = resolve_precision(precision, potential, "the i-PI client", default="float64")
        self.potential = potential
        self.n = len(np.asarray(potential.atomic_numbers))
        self.periodic = bool(periodic)
        self.precision = precision
        self.skin = float(skin)
        self.capacity_multiplier = float(capacity_multiplier)
        self._pl = None
        self._lists = None
        self._fn = None
        self.n_evaluations = 0
        self.bead_index = None
        self.init_string = None

    # --- the model -------------------------------------------------------------------------------
    def _build(self, positions, cell):
        import jax
        import jax.numpy as jnp

        from .engine import as_pytree_fn, wrap_positions
        from .neighborlist import PairLists

        self._pl = PairLists(
            self.potential.neighbors,
            self.n,
            cell=cell,
            skin=self.skin,
            capacity_multiplier=self.capacity_multiplier,
            variable_cell=self.periodic,
        )
        pl = self._pl
        periodic = self.periodic

        def strained(R, eps, energy_fn, pairs, c):
            sym = 0.5 * (eps + eps.T)
            d = jnp.eye(3, dtype=R.dtype) + sym
            if not periodic:
                return energy_fn(R @ d, pairs, None)
            return energy_fn(wrap_positions(R, c) @ d, pairs, c @ d)

        vg = jax.value_and_grad(strained, argnums=(0, 1))

        def fn(energy_fn, R, c, lists):
            lists = pl.update(lists, R, c)
            pairs, overflow = pl.pairs_checked(lists, R, c)
            e, (g, dedeps) = vg(R, jnp.zeros((3, 3), R.dtype), energy_fn, pairs, c)
            return lists, e, -g, -dedeps, pl.overflowed(lists) | overflow

        self._energy_fn = as_pytree_fn(self.potential.energy_fn)
        self._fn = jax.jit(fn)
        self._lists = pl.allocate(positions, cell)

    def compute(self, positions, cell=None):
        """(energy eV, forces (N, 3) eV/Å, virial (3, 3) eV) at ``positions`` (N, 3) Å; ``cell``
        (3, 3) Å, lattice vectors as rows, used only for a periodic client."""
        import jax.numpy as jnp

        from ..precision import precision_context
        from .driver import grown_capacities

        pos = np.asarray(positions, float)
        if pos.shape != (self.n, 3):
            raise ProtocolError(
                f"the server sent {pos.size // 3} atoms, but the model was built for {self.n} "
                "(check --structure: same atoms, same order as in the i-PI input)"
            )
        c = None
        if self.periodic:
            from .neighborlist import check_cell

            cutoffs = [s.cutoff for s in self.potential.neighbors.values()]
            c = check_cell(cell, cutoffs)
        with precision_context(self.precision):
            dt = jnp.float64 if self.precision == "float64" else jnp.float32
            R = jnp.asarray(pos, dt)
            cj = None if c is None else jnp.asarray(c, dt)
            if self._fn is None:
                self._build(R, cj)
            for attempt in range(6):
                lists, e, f, vir, ovf = self._fn(self._energy_fn, R, cj, self._lists)
                if not bool(ovf):
                    self._lists = lists
                    break
                # a pair buffer overflowed: fresh lists for this structure with growing head-room
                fresh = self._pl.capacities(self._pl.allocate(R, cj))
                caps = grown_capacities(fresh, fresh, 1.25**attempt)
                self._lists = self._pl.allocate(R, cj, capacities=caps)
            else:  # pragma: no cover - would need a pathological structure
                raise ModelError("pair lists kept overflowing; cannot evaluate this structure")
        e = float(e)
        f = np.asarray(f, float)
        vir = np.asarray(vir, float)
        if not (math.isfinite(e) and np.all(np.isfinite(f))):
            raise ModelError("the model returned a non-finite energy or forces for the structure i-PI sent")
        self.n_evaluations += 1
        return e, f, vir

    # --- the protocol ----------------------------------------------------------------------------
    def connect(self, address: str, timeout: float = 60.0):
        """Connect to the server at ``address``, retrying for up to ``timeout`` s (i-PI may still be
        starting). Returns the socket; ConfigError if nobody listens in time."""
        family, addr = parse_address(address)
        t_end = time.monotonic() + float(timeout)
        last = None
        while True:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.connect(addr)
                if family == socket.AF_INET:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock
            except OSError as exc:
                sock.close()
                last = exc
            if time.monotonic() > t_end:
                raise ConfigError(
                    f"no i-PI server answered at {address} ({addr}) within {timeout:g} s: {last}"
                )
            time.sleep(0.2)

    def serve(
        self, address: str, connect_timeout: float = 60.0, max_requests: int | None = None, log=None
    ) -> int:
        """Connect to i-PI at ``address`` and answer its requests until it sends EXIT or closes the
        connection (or after ``max_requests`` force evaluations). Returns the number answered."""
        sock = self.connect(address, connect_timeout)
        try:
            return self.serve_socket(sock, max_requests=max_requests, log=log)
        finally:
            sock.close()

    def serve_socket(self, sock, max_requests: int | None = None, log=None) -> int:
        """Run the client side of the protocol on a connected socket (see module docstring)."""
        log = log if log is not None else sys.stderr
        answered = 0
        result = None
        initialised = False
        while True:
            raw = _recv_exact(sock, HDRLEN)
            if not raw:
                break  # server closed the connection
            msg = raw.decode("ascii", errors="replace").strip().upper()
            if msg == "STATUS":
                if not initialised:
                    reply = "NEEDINIT"
                elif result is not None:
                    reply = "HAVEDATA"
                else:
                    reply = "READY"
                sock.sendall(header(reply))
            elif msg == "INIT":
                self.bead_index = int(_recv_array(sock, np.int32, 1)[0])
                length = int(_recv_array(sock, np.int32, 1)[0])
                self.init_string = _recv_exact(sock, length).decode(errors="replace") if length > 0 else ""
                initialised = True
            elif msg == "POSDATA":
                h = _recv_array(sock, np.float64, 9).reshape(3, 3)
                _recv_array(sock, np.float64, 9)  # inverse cell: not needed
                nat = int(_recv_array(sock, np.int32, 1)[0])
                if nat != self.n:
                    raise ProtocolError(
                        f"the server sent {nat} atoms, but the model was built for {self.n} "
                        "(check --structure: same atoms, same order as in the i-PI input)"
                    )
                q = _recv_array(sock, np.float64, 3 * nat).reshape(nat, 3) * units.Bohr
                cell = h.T * units.Bohr  # i-PI: lattice vectors are the columns of h
                result = self.compute(q, cell)
            elif msg == "GETFORCE":
                if result is None:
                    raise ProtocolError("GETFORCE before any POSDATA")
                e, f, vir = result
                ha, bohr = units.Hartree, units.Bohr
                payload = (
                    header("FORCEREADY")
                    + np.float64(e / ha).tobytes()
                    + np.int32(self.n).tobytes()
                    + np.ascontiguousarray(f * (bohr / ha), dtype=np.float64).tobytes()
                    + np.ascontiguousarray(vir / ha, dtype=np.float64).tobytes()
                    + np.int32(0).tobytes()
                )
                sock.sendall(payload)
                result = None
                answered += 1
                if max_requests is not None and answered >= max_requests:
                    break
            elif msg == "EXIT":
                break
            else:
                raise ProtocolError(f"unexpected message {raw!r} from the i-PI server")
        return answered
