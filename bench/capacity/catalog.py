"""The server catalog: the source document's servers and tiers, with the public facts behind them.

`bench/conf/catalog/data/servers.yaml` (package data) keeps the document's cells verbatim and
every added fact with its source and an `uncertain` flag. Loading flattens the facts into plain
values for the scaling model, and keeps beside each server the names of the uncertain facts it
rests on and the ids of its sources, so a report can cite both. Where a fact offers alternatives
(memory bandwidth by DDR type, a row naming two CPUs), the conservative one is taken, marked
uncertain, and said in the server's notes.

Prices come only from configuration (`catalog.prices`): each needs the date it was quoted and
where it came from. A server without a price has `price=None`; nothing here guesses one.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from bench.validation import ConfigError

# Catalog ISA keys -> the /proc/cpuinfo flag names the host fingerprint (`host_isa`) uses.
_ISA_FLAG_NAMES = {
    "fma3": ("fma",),
    "amx": ("amx_tile", "amx_bf16", "amx_int8"),
}
# "8P + 16E" in the catalog's note on a hybrid part's core count.
_HYBRID_SPLIT = re.compile(r"(\d+)\s*P\s*\+\s*(\d+)\s*E", re.IGNORECASE)
# A price's `as_of`: a year, a month or a day, ISO style.
_ISO_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
# OmegaConf renders a MISSING value as this string when a config is converted to a container.
_OMEGACONF_MISSING = "???"


@dataclass(frozen=True)
class CpuSpec:
    """One CPU part, flattened from the catalog's facts.

    `uncertain` names the fields (of this class) whose value the catalog flags as uncertain or
    that were chosen among alternatives; `sources` are the catalog source ids behind them.
    Hybrid parts: `p_cores`/`e_cores` split `cores`; clocks and FLOP/cycle are the P-core's.
    """

    id: str
    name: str
    vendor: str
    microarchitecture: str
    cores: int
    threads: int
    p_cores: int
    e_cores: int
    base_ghz: float
    boost_ghz: float
    fp32_flops_per_cycle_p: float
    fp32_flops_per_cycle_e: float | None
    isa: frozenset[str]
    mem_type: str
    mem_channels: int | None
    mem_bandwidth_gbs: float
    tdp_w: float | None
    passmark_cpu_mark: float | None
    passmark_single_thread: float | None
    uncertain: tuple[str, ...]
    sources: tuple[str, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class GpuSpec:
    """One GPU part; tensor rates are dense (no structured sparsity)."""

    id: str
    name: str
    architecture: str
    memory_gb: float | None
    memory_bandwidth_gbs: float | None
    fp32_tflops: float | None
    fp16_tensor_tflops: float | None
    int8_tensor_tops: float | None
    tdp_w: float | None
    uncertain: tuple[str, ...]
    sources: tuple[str, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Price:
    """A monthly price as quoted on `as_of` by `source`."""

    eur_per_month: float
    as_of: str
    source: str


@dataclass(frozen=True)
class Server:
    """One configuration of the source document.

    `name` is the document's configuration text, `document` its cells verbatim. `uncertain`
    names the uncertain facts the server rests on as `<part id>.<field>` (or `check.<name>`),
    `sources` the catalog source ids; `notes` carry the catalog's checks and every choice made
    while loading (which CPU of a two-CPU row, which bandwidth of two memory types).
    """

    id: str
    name: str
    memory_gb: float
    cpu: CpuSpec
    gpus: tuple[GpuSpec, ...]
    document: dict[str, Any]
    document_cpu_benchmark: float | None
    notes: tuple[str, ...]
    uncertain: tuple[str, ...]
    sources: tuple[str, ...]
    price: Price | None = None


@dataclass(frozen=True)
class Tier:
    """A deployment tier of the document, with the catalog's candidate mapping (an inference)."""

    id: str
    name: str
    spec: str
    candidate: dict[str, Any] | None
    note: str


@dataclass(frozen=True)
class Catalog:
    """The loaded catalog: servers in the document's order, tiers, and the cited sources."""

    servers: tuple[Server, ...]
    tiers: tuple[Tier, ...]
    sources: dict[str, dict[str, Any]]
    compiled: str
    path: str
    cpus: dict[str, CpuSpec] = field(default_factory=dict)
    gpus: dict[str, GpuSpec] = field(default_factory=dict)

    def server(self, server_id: str) -> Server:
        """The server with this id; KeyError naming the known ids otherwise."""
        for server in self.servers:
            if server.id == server_id:
                return server
        raise KeyError(f"{server_id!r}; known ids: {', '.join(s.id for s in self.servers)}")

    def cpu_for_host(self, host_cpu_model: str) -> CpuSpec | None:
        """The catalog CPU this host's CPU model string names, if any."""
        for cpu in self.cpus.values():
            if cpu_matches(host_cpu_model, cpu):
                return cpu
        return None


def default_catalog_path() -> Path:
    """The catalog shipped with the package: `bench/conf/catalog/data/servers.yaml`."""
    return Path(resources.files("bench.conf") / "catalog" / "data" / "servers.yaml")


def cpu_matches(host_cpu_model: str, cpu: CpuSpec) -> bool:
    """Whether a host's CPU model string (`/proc/cpuinfo`) names this part.

    Case-insensitive containment of the part's name as whole words, after dropping the (R)
    and (TM) marks: "Intel(R) Core(TM) i7-7700 CPU" names "Core i7-7700" but not "Core
    i7-7700K", and a bare "AMD EPYC" (a cloud VM) names no part at all.
    """
    text = re.sub(r"\((R|TM)\)", " ", host_cpu_model, flags=re.IGNORECASE)
    text = " ".join(text.split())
    pattern = r"(?<![\w-])" + re.escape(cpu.name) + r"(?![\w-])"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


# --- loading -----------------------------------------------------------------------------------


def load_catalog(
    path: str | Path | None = None, prices: Mapping[str, Mapping[str, Any]] | None = None
) -> Catalog:
    """Read a catalog file (default: the bundled one) and attach the configured prices.

    `prices` maps a server id to `{eur_per_month, as_of, source}`, e.g. `cfg.catalog.prices`.
    A price missing a field, or naming an unknown server, is a ConfigError that says which.
    """
    path = Path(path) if path is not None else default_catalog_path()
    data = yaml.safe_load(path.read_text())
    sources = {str(k): dict(v or {}) for k, v in (data.get("sources") or {}).items()}
    cpu_entries = data.get("cpus") or {}
    gpu_entries = data.get("gpus") or {}
    cpus = {cid: _cpu(cid, entry) for cid, entry in cpu_entries.items()}
    gpus = {gid: _gpu(gid, entry) for gid, entry in gpu_entries.items()}
    servers = [_server(entry, cpus, gpus) for entry in data.get("servers") or []]
    priced = _attach_prices(servers, _plain(prices))
    return Catalog(
        servers=tuple(priced),
        tiers=tuple(_tier(entry) for entry in data.get("deployment_tiers") or []),
        sources=sources,
        compiled=str(data.get("compiled", "")),
        path=str(path),
        cpus=cpus,
        gpus=gpus,
    )


@dataclass
class _Facts:
    """Reads facts of one part, recording the uncertain ones used, sources and notes."""

    part: str
    entry: Mapping[str, Any]
    uncertain: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def get(self, key: str, name: str | None = None, *, required: bool = True) -> Any:
        """The value of fact `key`, recorded under the spec field `name` (default: `key`)."""
        raw = self.entry.get(key)
        if not isinstance(raw, Mapping) or "value" not in raw:
            if raw is None and required:
                raise ConfigError(f"catalog {self.part}.{key}: missing; the scaling model needs it")
            return raw
        value = raw["value"]
        if value is None and required:
            raise ConfigError(f"catalog {self.part}.{key}: no value; the scaling model needs it")
        if raw.get("source"):
            self.sources.append(str(raw["source"]))
        if raw.get("uncertain"):
            self.mark(name or key)
        if raw.get("note"):
            self.notes.append(f"{key}: {raw['note']}")
        return value

    def mark(self, name: str) -> None:
        if name not in self.uncertain:
            self.uncertain.append(name)

    def pick(
        self,
        key: str,
        name: str,
        choose: Callable[..., Any] = min,
        *,
        required: bool = True,
    ) -> float | None:
        """A number; a dict of alternatives yields the conservative one (`choose`), marked
        uncertain, except `dense` of a dense/sparse pair, which is no alternative."""
        value = self.get(key, name, required=required)
        if not isinstance(value, Mapping):
            return None if value is None else float(value)
        if "dense" in value:
            return float(value["dense"])
        chosen_key = choose(value, key=lambda k: float(value[k]))
        chosen = float(value[chosen_key])
        self.mark(name)
        self.notes.append(
            f"{key}: alternatives {dict(value)}; took {chosen_key} = {chosen:g} (conservative)"
        )
        return chosen

    def first_of(self, keys: Iterable[str], name: str) -> float | None:
        """The first of several keys the catalog spells one fact with, or None."""
        for key in keys:
            if key in self.entry:
                return self.pick(key, name, required=False)
        return None


def _cpu(cpu_id: str, entry: Mapping[str, Any]) -> CpuSpec:
    facts = _Facts(f"cpus.{cpu_id}", entry)
    vendor = str(entry.get("vendor", ""))
    cores = int(facts.get("cores"))
    p_cores, e_cores = _core_split(entry.get("cores"), cores)
    base = facts.get("base_clock_ghz", "base_ghz")
    boost = facts.get("boost_clock_ghz", "boost_ghz")
    fpc = facts.get("fp32_flops_per_cycle_per_core", "fp32_flops_per_cycle_p")
    isa = facts.get("isa")
    memory = facts.get("memory", "mem_channels", required=False) or {}
    return CpuSpec(
        id=cpu_id,
        name=str(entry.get("name") or _name_from_id(cpu_id, vendor)),
        vendor=vendor,
        microarchitecture=str(facts.get("microarchitecture", required=False) or ""),
        cores=cores,
        threads=int(facts.get("threads")),
        p_cores=p_cores,
        e_cores=e_cores,
        # Hybrid parts list {p_core, e_core} clocks (the i9-13900's boost says max_turbo):
        # workers are sized on P-cores, so the P-core figure is the one used.
        base_ghz=float(_p_core(base)),
        boost_ghz=float(_p_core(boost)),
        fp32_flops_per_cycle_p=float(_p_core(fpc)),
        fp32_flops_per_cycle_e=float(fpc["e_core"]) if isinstance(fpc, Mapping) else None,
        isa=_isa_flags(isa),
        mem_type=str(memory.get("type", "")),
        mem_channels=int(memory["channels"]) if memory.get("channels") else None,
        mem_bandwidth_gbs=float(
            facts.pick("memory_bandwidth_theoretical_gbs", "mem_bandwidth_gbs")
        ),
        tdp_w=_base_power(facts.get("tdp_w", required=False)),
        passmark_cpu_mark=_passmark(facts, "cpu_mark", "passmark_cpu_mark"),
        passmark_single_thread=_passmark(facts, "single_thread", "passmark_single_thread"),
        uncertain=tuple(facts.uncertain),
        sources=tuple(dict.fromkeys(facts.sources)),
        notes=tuple(facts.notes),
    )


def _core_split(raw: Any, cores: int) -> tuple[int, int]:
    """(P-cores, E-cores) from a hybrid part's "8P + 16E" note; (cores, 0) otherwise."""
    note = raw.get("note", "") if isinstance(raw, Mapping) else ""
    found = _HYBRID_SPLIT.search(str(note))
    if not found:
        return cores, 0
    p, e = int(found.group(1)), int(found.group(2))
    if p + e != cores:
        raise ConfigError(f"catalog cpu cores: note {note!r} does not add up to {cores} cores")
    return p, e


def _p_core(value: Any) -> float:
    if isinstance(value, Mapping):
        return float(value.get("p_core", value.get("max_turbo")))
    return float(value)


def _base_power(value: Any) -> float | None:
    """The rated power; hybrid Intel parts list base and turbo power, the base is the rating."""
    if isinstance(value, Mapping):
        value = value.get("processor_base_power")
    return None if value is None else float(value)


def _isa_flags(isa: Mapping[str, bool]) -> frozenset[str]:
    flags: set[str] = set()
    for key, present in isa.items():
        if present:
            flags.update(_ISA_FLAG_NAMES.get(key, (key,)))
    return frozenset(flags)


def _passmark(facts: _Facts, key: str, name: str) -> float | None:
    """The first PassMark figure the catalog does not flag uncertain, else the first known."""
    entries = [e for e in (facts.entry.get("passmark") or {}).get(key) or [] if e.get("value")]
    if not entries:
        return None
    chosen = next((e for e in entries if not e.get("uncertain")), entries[0])
    if chosen.get("source"):
        facts.sources.append(str(chosen["source"]))
    if chosen.get("uncertain"):
        facts.mark(name)
    return float(chosen["value"])


def _name_from_id(cpu_id: str, vendor: str) -> str:
    """The marketing name from the catalog id: intel-core-i7-6700k -> "Core i7-6700K",
    amd-ryzen-9-7950x -> "Ryzen 9 7950X", amd-epyc-7502p -> "EPYC 7502P"."""
    words = cpu_id.split("-")
    if vendor and words[0] == vendor.lower():
        words = words[1:]
    if len(words) == 3 and words[0] == "core" and re.fullmatch(r"i\d", words[1]):
        return f"Core {words[1]}-{words[2].upper()}"
    families = {"ryzen": "Ryzen", "epyc": "EPYC", "xeon": "Xeon", "core": "Core"}
    return " ".join(families.get(w, w.upper()) for w in words)


def _gpu(gpu_id: str, entry: Mapping[str, Any]) -> GpuSpec:
    facts = _Facts(f"gpus.{gpu_id}", entry)
    return GpuSpec(
        id=gpu_id,
        name=str(entry.get("name") or _gpu_name(gpu_id)),
        architecture=str(facts.get("architecture", required=False) or ""),
        memory_gb=facts.pick("memory_gb", "memory_gb", required=False),
        memory_bandwidth_gbs=facts.pick(
            "memory_bandwidth_gbs", "memory_bandwidth_gbs", required=False
        ),
        fp32_tflops=facts.pick("fp32_tflops", "fp32_tflops", required=False),
        fp16_tensor_tflops=facts.first_of(
            ("fp16_tensor_tflops_dense", "fp16_tensor_tflops", "fp16_bf16_tensor_tflops"),
            "fp16_tensor_tflops",
        ),
        int8_tensor_tops=facts.first_of(
            ("int8_tensor_tops_dense", "int8_tensor_tops"), "int8_tensor_tops"
        ),
        # Power alternatives (PCIe or SXM): the higher one is the conservative one for cost.
        tdp_w=facts.pick("tdp_w", "tdp_w", max, required=False),
        uncertain=tuple(facts.uncertain),
        sources=tuple(dict.fromkeys(facts.sources)),
        notes=tuple(facts.notes),
    )


def _gpu_name(gpu_id: str) -> str:
    """nvidia-rtx-4000-sff-ada -> "NVIDIA RTX 4000 SFF Ada"."""
    words = gpu_id.split("-")
    names = {"nvidia": "NVIDIA", "ada": "Ada", "blackwell": "Blackwell", "quadro": "Quadro"}
    return " ".join(names.get(w, w.upper()) for w in words)


def _server(
    entry: Mapping[str, Any], cpus: Mapping[str, CpuSpec], gpus: Mapping[str, GpuSpec]
) -> Server:
    server_id = str(entry["id"])
    document = dict(entry.get("document") or {})
    notes: list[str] = []
    uncertain: list[str] = []
    sources: list[str] = []
    cpu = _server_cpu(server_id, list(entry.get("cpu_refs") or []), cpus, notes, uncertain)
    parts: list[CpuSpec | GpuSpec] = [cpu]
    for gpu_id in entry.get("gpu_refs") or []:
        if gpu_id not in gpus:
            raise ConfigError(f"catalog servers.{server_id}.gpu_refs: unknown GPU {gpu_id!r}")
        parts.append(gpus[gpu_id])
    if entry.get("gpu_alternatives"):
        notes.append(f"GPU alternatives not sized: {', '.join(entry['gpu_alternatives'])}")
    for part in parts:
        uncertain.extend(f"{part.id}.{name}" for name in part.uncertain)
        sources.extend(part.sources)
    for cpu_id in entry.get("cpu_refs") or []:  # a two-CPU row cites both parts' sources
        sources.extend(cpus[cpu_id].sources)
    for name, check in (entry.get("checks") or {}).items():
        text = f"{name}: {' '.join(str(check.get('value', '')).split())}"
        if check.get("note"):
            text += f" ({' '.join(str(check['note']).split())})"
        notes.append(text)
        if check.get("source"):
            sources.append(str(check["source"]))
        if check.get("uncertain"):
            uncertain.append(f"check.{name}")
    benchmark = entry.get("document_cpu_benchmark")
    return Server(
        id=server_id,
        name=str(document.get("configuration") or server_id),
        memory_gb=float(entry["memory_gb"]),
        cpu=cpu,
        gpus=tuple(p for p in parts if isinstance(p, GpuSpec)),
        document=document,
        document_cpu_benchmark=float(benchmark) if benchmark is not None else None,
        notes=tuple(notes),
        uncertain=tuple(dict.fromkeys(uncertain)),
        sources=tuple(dict.fromkeys(sources)),
    )


def _server_cpu(
    server_id: str,
    refs: list[str],
    cpus: Mapping[str, CpuSpec],
    notes: list[str],
    uncertain: list[str],
) -> CpuSpec:
    """The row's CPU; a row naming several parts is sized on the slower one."""
    if not refs:
        raise ConfigError(f"catalog servers.{server_id}.cpu_refs: empty; a server needs a CPU")
    unknown = [r for r in refs if r not in cpus]
    if unknown:
        raise ConfigError(f"catalog servers.{server_id}.cpu_refs: unknown CPU {unknown[0]!r}")
    if len(refs) == 1:
        return cpus[refs[0]]
    candidates = [cpus[r] for r in refs]
    # Slower = less all-core compute (FLOP/cycle x mid clock x cores): the conservative choice.
    chosen = min(
        candidates,
        key=lambda c: c.fp32_flops_per_cycle_p * (c.base_ghz + c.boost_ghz) / 2 * c.p_cores,
    )
    notes.append(
        f"the document names {len(refs)} CPUs ({', '.join(c.name for c in candidates)}); "
        f"sized on the slower, {chosen.name}"
    )
    uncertain.append("check.cpu_choice")
    lowest_bandwidth = min(c.mem_bandwidth_gbs for c in candidates)
    if lowest_bandwidth < chosen.mem_bandwidth_gbs:
        slowest_memory = min(candidates, key=lambda c: c.mem_bandwidth_gbs)
        notes.append(
            f"memory bandwidth {lowest_bandwidth:g} GB/s of the {slowest_memory.name} "
            f"({slowest_memory.mem_type}), the lower of the two"
        )
        chosen = replace(
            chosen,
            mem_bandwidth_gbs=lowest_bandwidth,
            mem_type=slowest_memory.mem_type,
            uncertain=tuple(dict.fromkeys((*chosen.uncertain, "mem_bandwidth_gbs"))),
        )
    return chosen


def _tier(entry: Mapping[str, Any]) -> Tier:
    document = entry.get("document") or {}
    mapping = entry.get("candidate_mapping") or {}
    candidate = mapping.get("value")
    return Tier(
        id=str(entry["id"]),
        name=str(document.get("name", entry["id"])),
        spec=str(document.get("spec", "")),
        candidate=dict(candidate) if candidate else None,
        note=str(mapping.get("note", "")),
    )


# --- prices ------------------------------------------------------------------------------------


def _plain(prices: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Plain dicts from a mapping or an OmegaConf node (whose MISSING fields become absent)."""
    if prices is None:
        return {}
    if isinstance(prices, DictConfig):
        prices = OmegaConf.to_container(prices, resolve=True)
    return {
        str(sid): {
            k: v for k, v in dict(entry or {}).items() if v not in (None, "", _OMEGACONF_MISSING)
        }
        for sid, entry in prices.items()
    }


def _attach_prices(servers: list[Server], prices: dict[str, dict[str, Any]]) -> list[Server]:
    known = {s.id for s in servers}
    for sid in prices:
        if sid not in known:
            raise ConfigError(
                f"catalog.prices.{sid}: no server with this id in the catalog; "
                f"known ids: {', '.join(sorted(known))}"
            )
    return [replace(s, price=_price(s.id, prices[s.id])) if s.id in prices else s for s in servers]


def _price(server_id: str, entry: Mapping[str, Any]) -> Price:
    where = f"catalog.prices.{server_id}"
    for name in ("eur_per_month", "as_of", "source"):
        if name not in entry:
            raise ConfigError(
                f"{where}.{name}: missing; a price needs eur_per_month, the date it was quoted "
                "(as_of) and where it comes from (source)"
            )
    try:
        eur = float(entry["eur_per_month"])
    except (TypeError, ValueError):
        raise ConfigError(
            f"{where}.eur_per_month: expected a number, got {entry['eur_per_month']!r}"
        ) from None
    if not eur > 0:
        raise ConfigError(f"{where}.eur_per_month: must be > 0, got {eur}")
    as_of = entry["as_of"]
    if isinstance(as_of, datetime.date):  # YAML reads an unquoted 2026-10-07 as a date
        as_of = as_of.isoformat()
    if not _ISO_DATE.match(str(as_of)):
        raise ConfigError(
            f"{where}.as_of: expected a date such as 2026-10-07 (or 2026-10), got {as_of!r}"
        )
    return Price(eur_per_month=eur, as_of=str(as_of), source=str(entry["source"]))
