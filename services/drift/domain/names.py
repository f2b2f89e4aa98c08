"""Column-name similarity that understands naming styles and common abbreviations.

`customerId`, `customer_id`, `CUSTOMER_ID` and `cust_id` are the same name in different clothes;
`zip` and `postal_code` are the same idea. Renames are recognised from these forms.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from functools import lru_cache

WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z]|\d|\b|_)|[A-Z]?[a-z]+|[A-Z]+|\d+")

# Abbreviations and synonyms seen in source systems, each to its long form (possibly two words).
EXPANSIONS = {
    "acct": "account", "addr": "address", "amt": "amount", "avg": "average", "bal": "balance",
    "cat": "category", "cnt": "count", "ctry": "country", "cust": "customer", "curr": "currency",
    "ccy": "currency", "desc": "description", "dept": "department", "dest": "destination",
    "dst": "destination", "dob": "birth date", "dt": "date", "emp": "employee", "fname": "first name",
    "lname": "last name", "surname": "last name", "forename": "first name", "given": "first",
    "family": "last", "img": "image", "inv": "invoice", "lang": "language", "loc": "location",
    "msg": "message", "mgr": "manager", "nbr": "number", "num": "number", "no": "number",
    "nm": "name", "org": "organization", "organisation": "organization", "pct": "percent",
    "ph": "phone", "tel": "phone", "telephone": "phone", "mobile": "phone", "cell": "phone",
    "prod": "product", "qty": "quantity", "ref": "reference", "src": "source", "stat": "status",
    "ts": "timestamp", "tstamp": "timestamp", "txn": "transaction", "trx": "transaction",
    "usr": "user", "uid": "user id", "pwd": "password", "passwd": "password", "zip": "postal code",
    "zipcode": "postal code", "postcode": "postal code", "postal": "postal", "created": "create",
    "updated": "update", "modified": "update", "deleted": "delete", "at": "time", "on": "time",
    "time": "time", "datetime": "timestamp", "e": "e", "mail": "mail", "email": "mail",
    "yr": "year", "mo": "month", "mth": "month", "wk": "week", "hr": "hour",
    "sec": "second", "cd": "code", "ind": "indicator", "flg": "flag", "is": "flag", "id": "id",
    "ident": "id", "identifier": "id", "key": "id", "pk": "id", "fk": "id", "sku": "product code",
    "price": "price", "cost": "cost", "val": "value", "vol": "volume", "wt": "weight",
    "ht": "height", "len": "length", "lat": "latitude", "lng": "longitude", "lon": "longitude",
    "long": "longitude", "info": "information", "cfg": "config", "conf": "config",
    "dflt": "default", "def": "default", "temp": "temperature", "tmp": "temporary",
}  # fmt: skip


@lru_cache(maxsize=65_536)
def tokens(name: str) -> tuple[str, ...]:
    """The words of a name, lower case, abbreviations expanded: `custAddr_2` -> customer address 2."""
    words: list[str] = []
    for part in re.split(r"[^A-Za-z0-9]+", name):
        for word in WORD.findall(part):
            lowered = word.lower()
            words.extend(EXPANSIONS.get(lowered, _singular(lowered)).split())
    return tuple(words)


NOT_PLURAL = frozenset({"news", "series", "species", "lens", "chaos", "ethos", "always", "sometimes", "yes"})


def _singular(word: str) -> str:
    """`replies` -> `reply`, `threads` -> `thread`, `status` and `address` stay (a light stemmer)."""
    if len(word) <= 3 or word in NOT_PLURAL or word.endswith(("ss", "us", "is", "ics", "as")):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    return word[:-1] if word.endswith("s") else word


def _is_abbreviation(short: str, long: str) -> bool:
    """`qty` of `quantity`, `cust` of `customer`: same first letter, letters in order."""
    if not short or not long or short[0] != long[0] or len(short) >= len(long):
        return False
    position = 0
    for letter in short:
        position = long.find(letter, position) + 1
        if position == 0:
            return False
    return True


def _tokens_match(left: str, right: str) -> bool:
    return left == right or _is_abbreviation(left, right) or _is_abbreviation(right, left)


@lru_cache(maxsize=65_536)
def name_similarity(left: str, right: str) -> float:
    """1.0 for the same words in another style; partial scores for shared words and spelling."""
    left_words, right_words = tokens(left), tokens(right)
    if left_words == right_words:
        return 1.0
    spelling = SequenceMatcher(None, "".join(left_words), "".join(right_words)).ratio()
    shared = len(set(left_words) & set(right_words)) / len(set(left_words) | set(right_words))
    aligned = 0.0
    if len(left_words) == len(right_words) and all(
        _tokens_match(a, b) for a, b in zip(left_words, right_words, strict=True)
    ):
        aligned = 0.9
    return max(spelling, shared, aligned)


# Words that name members of one series or opposites: two columns differing only by them are two
# columns (`start_date` / `end_date`), not a rename. The fitted model adds the sibling words it
# found naming columns side by side in real tables (`rename_model.json`).
SIBLING_SERIES = (
    ("first", "middle", "last"), ("start", "end", "begin", "finish"), ("min", "max", "minimum", "maximum"),
    ("from", "to"), ("old", "new"), ("before", "after"), ("open", "close"), ("create", "update", "delete"),
    ("debit", "credit"), ("buy", "sell"), ("in", "out"), ("input", "output"), ("source", "target"),
    ("sender", "recipient", "receiver"), ("width", "height", "depth", "length", "weight"),
    ("latitude", "longitude"), ("x", "y", "z"), ("billing", "shipping"), ("parent", "child"),
    ("day", "week", "month", "year", "hour", "minute", "second"), ("previous", "next", "prev"),
    ("top", "bottom", "left", "right"), ("upper", "lower"), ("inner", "outer"), ("primary", "secondary"),
    ("total", "subtotal", "tax", "discount", "net", "gross"), ("cost", "price"), ("hire", "termination"),
    ("birth", "death"), ("male", "female"), ("success", "failure"), ("read", "write"), ("income", "expense"),
    ("import", "export"), ("upload", "download"), ("request", "response"), ("header", "body", "footer"),
    ("question", "answer"), ("low", "high"), ("small", "large"), ("short", "long"), ("up", "down"),
)  # fmt: skip
SIBLINGS = frozenset(
    tuple(sorted((a, b))) for series in SIBLING_SERIES for a in series for b in series if a != b
)


def words_swapped(left: str, right: str) -> tuple[str, str] | None:
    """The two words when the names are the same but for one word swapped for an unrelated one
    (`start_date` / `end_date`, `is_visible` / `is_published`); None otherwise."""
    left_words, right_words = tokens(left), tokens(right)
    if len(left_words) != len(right_words):
        return None
    differ = [(a, b) for a, b in zip(left_words, right_words, strict=True) if a != b]
    if len(differ) != 1:
        return None
    a, b = differ[0]
    if _tokens_match(a, b) or a in b or b in a:
        return None
    return a, b


def substitution(left: str, right: str) -> float:
    """1.0 when the names differ by swapping a word for an unrelated one (`start_date` / `end_date`),
    the typical shape of two different columns; 0.0 when one only adds or abbreviates words."""
    left_words, right_words = tokens(left), tokens(right)
    left_only = [w for w in left_words if w not in right_words]
    right_only = [w for w in right_words if w not in left_words]
    if not left_only or not right_only:
        return 0.0
    a, b = "".join(left_only), "".join(right_only)
    if _is_abbreviation(a, b) or _is_abbreviation(b, a) or a in b or b in a:
        return 0.0
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    if matcher.real_quick_ratio() < 0.7 or matcher.quick_ratio() < 0.7:  # upper bounds: no need
        return 1.0
    return 1.0 if matcher.ratio() < 0.7 else 0.0
