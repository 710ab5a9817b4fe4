"""Rule objects: Wolfram's elementary rules and life-like B/S rules, with their tables."""

# ruff: noqa: F722  (jaxtyping shape strings are not forward references)

import re

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Int

_BS = re.compile(r"^\s*B([0-8]*)\s*/\s*S([0-8]*)\s*$", re.IGNORECASE)
_SB = re.compile(r"^\s*([0-8]*)\s*/\s*([0-8]*)\s*$")


class ElementaryRule(eqx.Module):
    """One of Wolfram's 256 elementary (1D, radius 1, two-state) rules.

    Bit `4 l + 2 c + r` of `number` is the next state of a cell whose left neighbour,
    itself and right neighbour are `l, c, r`.

    **Arguments:**

    - `number`: the Wolfram code, an int in 0..255.

    **Raises:** `ValueError` if `number` is not an int in 0..255.

    **Example:** `ElementaryRule(30).table` is `[0, 1, 1, 1, 1, 0, 0, 0]`.
    """

    number: int = eqx.field(static=True)

    def __check_init__(self):
        if isinstance(self.number, bool) or not isinstance(self.number, (int, np.integer)):
            raise ValueError(
                f"ElementaryRule: number must be an int in 0..255, got {self.number!r}"
            )
        if not 0 <= int(self.number) <= 255:
            raise ValueError(f"ElementaryRule: number must be in 0..255, got {self.number}")

    @property
    def table(self) -> Int[Array, " 8"]:
        """Gives the next state for neighbourhood index `4 l + 2 c + r` (shape (8,), int32)."""
        return jnp.asarray(elementary_table(self.number))

    def __str__(self) -> str:
        return f"rule {self.number}"


def elementary_table(number: int) -> np.ndarray:
    """Gives rule `number`'s table as a numpy int32 array of shape (8,), indexed 4l + 2c + r."""
    ElementaryRule(number)  # validates
    return np.array([(int(number) >> i) & 1 for i in range(8)], dtype=np.int32)


class LifeLikeRule(eqx.Module):
    """A life-like (outer-totalistic, Moore neighbourhood, two-state) 2D rule.

    A dead cell with `n` live neighbours is born if `n in birth`; a live cell survives
    if `n in survive`; otherwise the cell is dead at the next step.

    **Arguments:**

    - `birth`, `survive`: neighbour counts in 0..8 (any iterable of ints; stored sorted,
      without duplicates).

    **Raises:** `ValueError` for counts outside 0..8.

    **Example:** `LifeLikeRule((3,), (2, 3))` is Conway's Life; `str()` gives `"B3/S23"`,
    and `parse_rule("B3/S23")` gives it back.
    """

    birth: tuple[int, ...] = eqx.field(static=True)
    survive: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, birth=(), survive=()):
        for name, counts in (("birth", birth), ("survive", survive)):
            counts = tuple(counts)
            bad = [
                n
                for n in counts
                if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= 8
            ]
            if bad:
                raise ValueError(
                    f"LifeLikeRule: {name} counts must be ints in 0..8, got {counts!r}"
                )
        self.birth = tuple(sorted({int(n) for n in birth}))
        self.survive = tuple(sorted({int(n) for n in survive}))

    @property
    def table(self) -> Int[Array, "2 9"]:
        """Gives `table[state, n]`, the next state of a cell in `state` with `n` live neighbours."""
        return jnp.asarray(self.numpy_table())

    def numpy_table(self) -> np.ndarray:
        """Like `table`, as a numpy int32 array of shape (2, 9)."""
        t = np.zeros((2, 9), np.int32)
        t[0, list(self.birth)] = 1
        t[1, list(self.survive)] = 1
        return t

    def __str__(self) -> str:
        return "B" + "".join(map(str, self.birth)) + "/S" + "".join(map(str, self.survive))


def parse_rule(text: str) -> LifeLikeRule:
    """Gives the life-like rule written in B/S notation.

    Accepts `"B3/S23"` (case-insensitive, spaces around `/` allowed) and the older
    S/B form `"23/3"` (survival first). Digits must be 0..8, each at most once.

    **Raises:** `ValueError` naming the string and the expected form when it is malformed.

    **Example:** `parse_rule("B36/S23")` is HighLife; `str(parse_rule("b3/s23")) == "B3/S23"`.
    """
    if not isinstance(text, str):
        raise ValueError(f"parse_rule: rule must be a string such as 'B3/S23', got {text!r}")
    m = _BS.match(text)
    if m:
        b, s = m.group(1), m.group(2)
    else:
        m = _SB.match(text)
        if not m:
            raise ValueError(
                f"parse_rule: cannot read {text!r}; expected B/S notation such as 'B3/S23' "
                "(digits 0-8 after B and after S) or S/B notation such as '23/3'"
            )
        s, b = m.group(1), m.group(2)
    for name, digits in (("birth", b), ("survival", s)):
        if len(set(digits)) != len(digits):
            raise ValueError(f"parse_rule: repeated {name} digit in {text!r}")
    return LifeLikeRule(tuple(int(c) for c in b), tuple(int(c) for c in s))


LIFE = LifeLikeRule((3,), (2, 3))
HIGHLIFE = LifeLikeRule((3, 6), (2, 3))
SEEDS = LifeLikeRule((2,), ())
DAY_AND_NIGHT = LifeLikeRule((3, 6, 7, 8), (3, 4, 6, 7, 8))
