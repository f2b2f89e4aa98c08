# ruff: noqa: E501 - data tables read best one case per line
"""Build the labelled corpus tests/data/drift_corpus.jsonl: `python -m tests.drift.corpus_build`.

Labels come from how each case is constructed (the mutation applied), never from the detector.
Each line: {"id", "before": {"dialect", "columns"}, "after": {"dialect", "columns"},
"expected": [{"drift_type", "column_name", "previous_name"?}]}.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

OUT = Path(__file__).parents[1] / "data" / "drift_corpus.jsonl"
DIALECTS = ("postgres", "mysql", "clickhouse", "sqlite", "generic")

# logical type -> spelling per dialect (None: the dialect has no exact equivalent)
SPELLINGS: dict[str, dict[str, list[str]]] = {
    "int32": {"postgres": ["integer", "int4", "int"], "mysql": ["int", "int(11)"], "clickhouse": ["Int32"],
              "sqlite": [], "generic": ["int", "integer"]},
    "int64": {"postgres": ["bigint", "int8"], "mysql": ["bigint", "bigint(20)"], "clickhouse": ["Int64"],
              "sqlite": ["INTEGER", "BIGINT"], "generic": ["bigint"]},
    "int16": {"postgres": ["smallint", "int2"], "mysql": ["smallint"], "clickhouse": ["Int16"], "sqlite": [],
              "generic": ["smallint"]},
    "text": {"postgres": ["text"], "mysql": ["text", "longtext"], "clickhouse": ["String"], "sqlite": ["TEXT"],
             "generic": ["text", "string"]},
    "varchar50": {"postgres": ["varchar(50)", "character varying(50)"], "mysql": ["varchar(50)"],
                  "clickhouse": [], "sqlite": ["VARCHAR(50)"], "generic": ["varchar(50)"]},
    "varchar255": {"postgres": ["varchar(255)", "character varying(255)"], "mysql": ["varchar(255)"],
                   "clickhouse": [], "sqlite": ["VARCHAR(255)"], "generic": ["varchar(255)"]},
    "dec10_2": {"postgres": ["numeric(10,2)", "decimal(10,2)"], "mysql": ["decimal(10,2)"],
                "clickhouse": ["Decimal(10, 2)"], "sqlite": ["NUMERIC(10,2)"], "generic": ["decimal(10,2)"]},
    "dec18_4": {"postgres": ["numeric(18,4)"], "mysql": ["decimal(18,4)"], "clickhouse": ["Decimal(18, 4)"],
                "sqlite": ["NUMERIC(18,4)"], "generic": ["decimal(18,4)"]},
    "float64": {"postgres": ["double precision", "float8"], "mysql": ["double"], "clickhouse": ["Float64"],
                "sqlite": ["REAL"], "generic": ["double"]},
    "float32": {"postgres": ["real", "float4"], "mysql": ["float"], "clickhouse": ["Float32"], "sqlite": [],
                "generic": ["float"]},
    "bool": {"postgres": ["boolean", "bool"], "mysql": ["tinyint(1)", "boolean"], "clickhouse": ["Bool"],
             "sqlite": ["BOOLEAN"], "generic": ["boolean"]},
    "date": {"postgres": ["date"], "mysql": ["date"], "clickhouse": ["Date", "Date32"], "sqlite": ["DATE"],
             "generic": ["date"]},
    "tstz": {"postgres": ["timestamptz", "timestamp with time zone"], "mysql": ["timestamp"],
             "clickhouse": ["DateTime64(3, 'UTC')", "DateTime", "DateTime64(6)"], "sqlite": [],
             "generic": ["timestamptz"]},
    "ts": {"postgres": ["timestamp", "timestamp without time zone"], "mysql": ["datetime", "datetime(6)"],
           "clickhouse": [], "sqlite": ["DATETIME", "TIMESTAMP"], "generic": ["timestamp"]},
    "uuid": {"postgres": ["uuid"], "mysql": [], "clickhouse": ["UUID"], "sqlite": [], "generic": ["uuid"]},
    "json": {"postgres": ["jsonb", "json"], "mysql": ["json"], "clickhouse": [], "sqlite": [], "generic": ["json"]},
    "int_array": {"postgres": ["integer[]", "int4[]"], "mysql": [], "clickhouse": ["Array(Int32)"], "sqlite": [],
                  "generic": []},
    "bigint_array": {"postgres": ["bigint[]"], "mysql": [], "clickhouse": ["Array(Int64)"], "sqlite": [],
                     "generic": []},
}  # fmt: skip

WIDER = {
    "int16": ["int32", "int64"], "int32": ["int64", "dec18_4", "text"], "float32": ["float64"],
    "varchar50": ["varchar255", "text"], "dec10_2": ["dec18_4"], "date": ["ts", "tstz"], "ts": ["tstz"],
    "bool": ["int32", "text"], "int_array": ["bigint_array"], "uuid": ["text"], "int64": ["text"],
}  # fmt: skip
NARROWER = {
    "int64": ["int32", "int16"], "int32": ["int16"], "float64": ["float32"], "text": ["varchar255", "varchar50"],
    "varchar255": ["varchar50"], "dec18_4": ["dec10_2", "float64"], "tstz": ["ts", "date"], "ts": ["date"],
    "bigint_array": ["int_array"], "dec10_2": ["int32"],
}  # fmt: skip
INCOMPATIBLE = {
    "text": ["int64", "date", "bool", "uuid"], "varchar255": ["int32", "tstz"], "date": ["bool"],
    "json": ["int64"], "uuid": ["int64"], "int_array": ["int64"],
}  # fmt: skip

TABLES: dict[str, list[tuple[str, str, bool, bool]]] = {  # name: [(column, logical type, nullable, pk)]
    "orders": [("order_id", "int64", False, True), ("customer_id", "int64", False, False),
               ("order_date", "date", False, False), ("status", "varchar50", True, False),
               ("amount", "dec10_2", True, False), ("shipping_address", "text", True, False),
               ("created_at", "tstz", False, False), ("notes", "text", True, False)],
    "customers": [("id", "int32", False, True), ("first_name", "varchar255", True, False),
                  ("last_name", "varchar255", True, False), ("email", "varchar255", False, False),
                  ("phone", "varchar50", True, False), ("zip", "varchar50", True, False),
                  ("date_of_birth", "date", True, False), ("is_active", "bool", False, False)],
    "events": [("event_id", "uuid", False, True), ("user_id", "int64", False, False),
               ("event_type", "text", False, False), ("payload", "json", True, False),
               ("occurred_at", "tstz", False, False), ("session_id", "text", True, False)],
    "products": [("product_id", "int32", False, True), ("sku", "varchar50", False, False),
                 ("description", "text", True, False), ("unit_price", "dec10_2", False, False),
                 ("quantity", "int32", True, False), ("weight", "float64", True, False),
                 ("category", "varchar50", True, False), ("updated_at", "ts", True, False)],
    "payments": [("payment_id", "int64", False, True), ("account_number", "varchar50", False, False),
                 ("transaction_id", "varchar255", False, False), ("total_amount", "dec18_4", False, False),
                 ("currency", "varchar50", True, False), ("paid_at", "tstz", True, False),
                 ("tags", "int_array", True, False)],
    "employees": [("emp_id", "int32", False, True), ("dept", "varchar50", True, False),
                  ("manager_id", "int32", True, False), ("salary", "dec10_2", True, False),
                  ("hire_date", "date", False, False), ("rating", "float32", True, False),
                  ("message", "text", True, False)],
    "metrics": [("metric_id", "int64", False, True), ("host", "text", False, False),
                ("cpu_usage", "float64", True, False), ("mem_bytes", "int64", True, False),
                ("sampled_at", "tstz", False, False), ("labels", "int_array", True, False),
                ("trace_uuid", "uuid", True, False), ("region_code", "text", True, False)],
    "notes_app": [("note_id", "int64", False, True), ("title", "varchar255", False, False),
                  ("body_text", "text", True, False), ("pinned", "bool", False, False),
                  ("due_date", "date", True, False), ("edited_at", "ts", True, False),
                  ("word_count", "int64", True, False), ("priority_score", "float64", True, False)],
}  # fmt: skip

# true renames: (old, new); both directions are used
RENAMES = [
    ("customer_id", "customerId"), ("customer_id", "cust_id"), ("amount", "amt"), ("quantity", "qty"),
    ("created_at", "createdAt"), ("created_at", "creation_time"), ("email", "email_address"),
    ("phone", "phone_number"), ("phone", "telephone"), ("zip", "postal_code"), ("zip", "zipcode"),
    ("first_name", "firstname"), ("first_name", "fname"), ("last_name", "surname"), ("last_name", "LastName"),
    ("date_of_birth", "dob"), ("date_of_birth", "birth_date"), ("description", "desc"),
    ("description", "product_description"), ("shipping_address", "ship_addr"), ("shipping_address", "shippingAddress"),
    ("order_date", "order_dt"), ("order_date", "orderDate"), ("status", "order_status"), ("status", "state"),
    ("unit_price", "price"), ("unit_price", "unitPrice"), ("total_amount", "total_amt"), ("total_amount", "total"),
    ("transaction_id", "txn_id"), ("transaction_id", "TransactionID"), ("account_number", "acct_no"),
    ("account_number", "account_num"), ("category", "cat"), ("category", "product_category"),
    ("message", "msg"), ("is_active", "active"), ("is_active", "isActive"), ("updated_at", "modified_at"),
    ("updated_at", "last_updated"), ("user_id", "userId"), ("user_id", "uid"), ("event_type", "type"),
    ("event_type", "eventType"), ("payload", "event_payload"), ("occurred_at", "occurred_on"),
    ("occurred_at", "event_time"), ("session_id", "sessionId"), ("session_id", "sess_id"),
    ("currency", "ccy"), ("currency", "currency_code"), ("paid_at", "payment_time"), ("paid_at", "paidAt"),
    ("dept", "department"), ("manager_id", "mgr_id"), ("salary", "base_salary"), ("hire_date", "hired_on"),
    ("rating", "score"), ("weight", "wt"), ("weight", "weight_kg"), ("sku", "product_code"), ("notes", "note"),
    ("notes", "comments"), ("tags", "tag_ids"), ("emp_id", "employee_id"), ("order_id", "orderId"),
    ("product_id", "prod_id"), ("id", "customer_id"), ("event_id", "eventId"), ("payment_id", "pay_id"),
    ("cpu_usage", "cpuUsage"), ("mem_bytes", "memory_bytes"), ("sampled_at", "sample_ts"), ("host", "hostname"),
    ("trace_uuid", "traceUuid"), ("title", "note_title"), ("pinned", "is_pinned"), ("due_date", "dueDate"),
    ("word_count", "num_words"), ("priority_score", "prio_score"), ("labels", "label_ids"),
]  # fmt: skip

# different columns that an unwary matcher would pair: (removed, added, added type or None = same type)
NON_RENAMES = [
    ("phone", "fax", None), ("amount", "discount", None), ("first_name", "middle_name", None),
    ("first_name", "nickname", None), ("created_at", "deleted_at", None), ("order_date", "delivery_date", None),
    ("status", "priority", None), ("notes", "internal_comment_id", "int64"), ("quantity", "reorder_level", None),
    ("weight", "height", None), ("unit_price", "cost_price", None), ("currency", "country", None),
    ("paid_at", "refunded_at", None), ("salary", "bonus", None), ("hire_date", "termination_date", None),
    ("rating", "latitude", None), ("category", "brand", None), ("email", "website", None),
    ("shipping_address", "billing_address", None), ("zip", "city", None), ("session_id", "device_id", None),
    ("payload", "headers", None), ("user_id", "org_id", None), ("manager_id", "mentor_id", None),
    ("description", "title", None), ("total_amount", "tax_amount", None), ("event_type", "source", None),
    ("is_active", "is_deleted", None), ("message", "subject", None), ("dept", "location", None),
    ("last_name", "first_name_2", None), ("updated_at", "published_at", None), ("sku", "barcode", None),
    ("account_number", "routing_number", None), ("tags", "scores", None),
]  # fmt: skip

# renames without lexical evidence, recognisable by their values
SEMANTIC_RENAMES = [
    ("notes", "remarks"),
    ("rating", "score"),
    ("sku", "article"),
    ("session_id", "visit"),
    ("phone", "contact"),
    ("zip", "plz"),
    ("account_number", "iban"),
    ("transaction_id", "reference"),
    ("description", "blurb"),
    ("email", "login"),
    ("manager_id", "supervisor"),
    ("status", "stage"),
    ("category", "segment"),
    ("message", "body"),
    ("shipping_address", "deliver_to"),
    ("currency", "iso_money"),
]
# unrelated columns; True = their few distinct values happen to coincide (booleans)
DATA_NON_RENAMES = [
    ("is_active", "is_verified", True),
    ("is_active", "newsletter", True),
    ("status", "tier", False),
    ("notes", "warehouse", False),
    ("email", "referrer", False),
    ("phone", "locale_name", False),
    ("sku", "colour", False),
    ("event_type", "browser", False),
    ("currency", "timezone", False),
    ("dept", "floor", False),
]

ADDED = [
    ("loyalty_tier", "varchar50"), ("referral_code", "text"), ("discount_rate", "dec10_2"), ("region", "text"),
    ("updated_by", "int64"), ("is_test", "bool"), ("external_ref", "varchar255"), ("score", "float64"),
    ("archived_on", "date"), ("metadata", "json"), ("version", "int32"), ("locale", "varchar50"),
]  # fmt: skip


class Builder:
    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.cases: list[dict[str, Any]] = []

    def spell(self, logical: str, dialect: str, nullable: bool) -> str:
        options = SPELLINGS[logical][dialect] or SPELLINGS[logical]["postgres"]
        spelled = self.random.choice(options)
        if dialect == "clickhouse" and nullable and SPELLINGS[logical]["clickhouse"]:
            if logical == "text" and self.random.random() < 0.3:
                return "LowCardinality(Nullable(String))"
            return f"Nullable({spelled})"
        return spelled

    def dialect_for(self, logical_types: list[str]) -> str:
        """A random dialect among those that spell every type of the case exactly."""
        able = [d for d in DIALECTS if all(SPELLINGS[t][d] for t in logical_types)]
        return self.random.choice(able)

    def render(self, columns: list[dict[str, Any]], dialect: str) -> list[dict[str, Any]]:
        out = []
        for c in columns:
            item = {"name": c["name"], "type": self.spell(c["type"], dialect, c["nullable"]),
                    "nullable": c["nullable"], "primary_key": c["pk"]}  # fmt: skip
            if c.get("samples"):
                item["sample_values"] = c["samples"]
            for statistic in ("distinct_ratio", "null_ratio"):
                if statistic in c:
                    item[statistic] = c[statistic]
            out.append(item)
        return out

    def add(self, kind: str, before: list[dict[str, Any]], after: list[dict[str, Any]],
            expected: list[dict[str, Any]], *, cross_dialect: bool = False) -> None:  # fmt: skip
        types = [c["type"] for c in before + after]
        first = self.dialect_for(types)
        second = self.dialect_for(types) if cross_dialect else first
        if self.random.random() < 0.3:
            after = after[:]
            self.random.shuffle(after)
        self.cases.append({
            "id": f"{kind}-{len(self.cases):03d}",
            "before": {"dialect": first, "columns": self.render(before, first)},
            "after": {"dialect": second, "columns": self.render(after, second)},
            "expected": expected,
        })  # fmt: skip


def _table(name: str) -> list[dict[str, Any]]:
    return [{"name": c, "type": t, "nullable": n, "pk": p} for c, t, n, p in TABLES[name]]


def _find_table(column: str) -> str:
    return next(t for t, cols in TABLES.items() if any(c[0] == column for c in cols))


def build() -> list[dict[str, Any]]:
    b = Builder(seed=20261125)
    r = b.random
    # 1. renames, alone or with a type widening, sometimes with overlapping sample values
    for old, new in RENAMES:
        for reverse in (False, True):
            table = _table(_find_table(old))
            before = [dict(c) for c in table]
            after = [dict(c) for c in table]
            src, dst = old, new
            target = next(c for c in after if c["name"] == src)
            if reverse:  # the source spelled it the short way; the new name is the long one
                next(c for c in before if c["name"] == src)["name"] = dst
                target["name"], src, dst = src, dst, src
            else:
                target["name"] = dst
            expected = [{"drift_type": "renamed_column", "column_name": dst, "previous_name": src}]
            if r.random() < 0.25 and target["type"] in WIDER:
                target["type"] = r.choice(WIDER[target["type"]])
                expected.append({"drift_type": "type_change", "column_name": dst})
            if r.random() < 0.3:
                values = [f"{dst[:3]}-{i}" for i in range(8)]
                next(c for c in before if c["name"] == src)["samples"] = values
                target["samples"] = [*values[2:], "x-1", "x-2"]
            extra, logical = r.choice(ADDED)
            if r.random() < 0.3 and extra not in {c["name"] for c in before + after}:  # unrelated noise
                after.append({"name": extra, "type": logical, "nullable": True, "pk": False})
                expected.append({"drift_type": "new_column", "column_name": extra})
            b.add("rename", before, after, expected, cross_dialect=r.random() < 0.2)
    # 2. non-renames: one column removed and an unrelated one added
    for old, new, new_type in NON_RENAMES:
        table = _table(_find_table(old))
        after = [dict(c) for c in table]
        target = next(c for c in after if c["name"] == old)
        target["name"] = new
        target["type"] = new_type or target["type"]
        target["pk"] = False
        before = [dict(c) for c in table]
        if r.random() < 0.4:
            next(c for c in before if c["name"] == old)["samples"] = [f"a{i}" for i in range(6)]
            target["samples"] = [f"b{i}" for i in range(6)]
        expected = [{"drift_type": "new_column", "column_name": new},
                    {"drift_type": "removed_column", "column_name": old}]  # fmt: skip
        b.add("nonrename", before, after, expected)
    # 3. type changes of every class
    for classes in (WIDER, NARROWER, INCOMPATIBLE):
        for table_name in TABLES:
            table = _table(table_name)
            changeable = [c for c in table if c["type"] in classes]
            for column in r.sample(changeable, min(2, len(changeable))):
                after = [dict(c) for c in table]
                target = next(c for c in after if c["name"] == column["name"])
                target["type"] = r.choice(classes[column["type"]])
                b.add("type", table, after, [{"drift_type": "type_change", "column_name": column["name"]}],
                      cross_dialect=r.random() < 0.3)  # fmt: skip
    # 4. new and removed columns
    for table_name in TABLES:
        for _ in range(3):
            table = _table(table_name)
            extra, logical = r.choice(ADDED)
            nullable = r.random() < 0.7
            after = [dict(c) for c in table]
            after.insert(
                r.randrange(len(after) + 1),
                {"name": extra, "type": logical, "nullable": nullable, "pk": False},
            )
            b.add("new", table, after, [{"drift_type": "new_column", "column_name": extra}])
        for column in r.sample(table, 3):
            after = [dict(c) for c in _table(table_name) if c["name"] != column["name"]]
            b.add(
                "removed",
                _table(table_name),
                after,
                [{"drift_type": "removed_column", "column_name": column["name"]}],
            )
    # 5. nullability and primary-key changes
    for table_name in TABLES:
        for column in r.sample([c for c in _table(table_name) if not c["pk"]], 3):
            after = [dict(c) for c in _table(table_name)]
            target = next(c for c in after if c["name"] == column["name"])
            target["nullable"] = not target["nullable"]
            b.add("nullability", _table(table_name), after,
                  [{"drift_type": "nullability_change", "column_name": column["name"]}])  # fmt: skip
        table = _table(table_name)
        key = next(c for c in table if c["pk"])
        other = r.choice(
            [c for c in table if not c["pk"] and not c["nullable"]] or [c for c in table if not c["pk"]]
        )
        after = [dict(c) for c in table]
        next(c for c in after if c["name"] == other["name"])["pk"] = True
        if other["nullable"]:
            next(c for c in after if c["name"] == other["name"])["nullable"] = False
        expected = [{"drift_type": "primary_key_change", "column_name": other["name"]}]
        if other["nullable"]:
            expected.append({"drift_type": "nullability_change", "column_name": other["name"]})
        b.add("pk", table, after, expected)
        after = [dict(c) for c in table]
        next(c for c in after if c["name"] == key["name"])["pk"] = False
        b.add("pk", table, after, [{"drift_type": "primary_key_change", "column_name": key["name"]}])
    # 6. no drift: reordering, other spellings, other dialects with the same types
    for table_name in TABLES:
        for _ in range(3):
            after = [dict(c) for c in _table(table_name)]
            r.shuffle(after)
            b.add("nodrift", _table(table_name), after, [], cross_dialect=True)
    # 7. several changes at once
    for table_name in TABLES:
        for _ in range(3):
            table = _table(table_name)
            after = [dict(c) for c in table]
            removed, widened, relaxed = r.sample([c for c in after if not c["pk"]], 3)
            after.remove(removed)
            expected = [{"drift_type": "removed_column", "column_name": removed["name"]}]
            if widened["type"] in WIDER:
                widened["type"] = r.choice(WIDER[widened["type"]])
                expected.append({"drift_type": "type_change", "column_name": widened["name"]})
            relaxed["nullable"] = not relaxed["nullable"]
            expected.append({"drift_type": "nullability_change", "column_name": relaxed["name"]})
            extra, logical = r.choice(ADDED)
            after.append({"name": extra, "type": logical, "nullable": True, "pk": False})
            expected.append({"drift_type": "new_column", "column_name": extra})
            b.add("multi", table, after, expected)
    # 8. evidence from the data: unrelated names whose values match, and look-alike values that do not
    for old, new in SEMANTIC_RENAMES:
        table = _table(_find_table(old))
        before = [dict(c) for c in table]
        after = [dict(c) for c in table]
        values = [f"{r.randrange(10**6):06d}" for _ in range(10)]
        next(c for c in before if c["name"] == old)["samples"] = values
        target = next(c for c in after if c["name"] == old)
        target.update(name=new, samples=values[r.randrange(4) :])
        b.add(
            "datarename",
            before,
            after,
            [{"drift_type": "renamed_column", "column_name": new, "previous_name": old}],
        )
    for old, new, overlapping in DATA_NON_RENAMES:
        table = _table(_find_table(old))
        before = [dict(c) for c in table]
        after = [dict(c) for c in table]
        next(c for c in before if c["name"] == old)["samples"] = (
            [True, False] if overlapping else ["x1", "x2"]
        )
        target = next(c for c in after if c["name"] == old)
        target.update(name=new, samples=[False, True] if overlapping else ["y1", "y2"], pk=False)
        expected = [{"drift_type": "new_column", "column_name": new},
                    {"drift_type": "removed_column", "column_name": old}]  # fmt: skip
        b.add("datanonrename", before, after, expected)
    _moved_data(b)
    return b.cases


def _moved_data(b: Builder) -> None:
    """9. A column copied into a new one and dropped (ADD new; UPDATE new = old; DROP old): the new
    column comes last, its values and statistics are the old one's, so it is one column renamed.
    Beside it, look-alike columns added last whose values or statistics differ. Observers send
    `distinct_ratio` and `null_ratio` with samples; some cases carry only those."""
    r = b.random
    for index, (old, new) in enumerate(SEMANTIC_RENAMES + RENAMES[:: len(RENAMES) // 16]):
        table = _table(_find_table(old))
        before = [dict(c) for c in table]
        after = [dict(c) for c in table if c["name"] != old]
        moved = dict(next(c for c in table if c["name"] == old), name=new, pk=False)
        after.append(moved)
        distinct, nulls = round(r.uniform(0.05, 1.0), 2), round(r.uniform(0.0, 0.4), 2)
        source = next(c for c in before if c["name"] == old)
        source.update(distinct_ratio=distinct, null_ratio=nulls)
        moved.update(distinct_ratio=distinct, null_ratio=nulls)
        if index % 3:  # values too
            values = [f"{r.randrange(10**6):06d}" for _ in range(12)]
            source["samples"], moved["samples"] = values, values[r.randrange(4) :]
        expected = [{"drift_type": "renamed_column", "column_name": new, "previous_name": old}]
        if source["pk"]:
            expected.append({"drift_type": "primary_key_change", "column_name": new})
        b.add("movedrename", before, after, expected)
    for old, new, _ in NON_RENAMES:
        table = _table(_find_table(old))
        before = [dict(c) for c in table]
        after = [dict(c) for c in table if c["name"] != old]
        added = dict(next(c for c in table if c["name"] == old), name=new, pk=False)
        after.append(added)
        source = next(c for c in before if c["name"] == old)
        for column in (source, added):  # drawn independently: sometimes alike by chance
            column.update(
                distinct_ratio=round(r.uniform(0.05, 1.0), 2), null_ratio=round(r.uniform(0.0, 0.4), 2)
            )
        if r.random() < 0.5:
            source["samples"] = [f"x{i}" for i in range(10)]
            added["samples"] = [f"y{i}" for i in range(10)]
        expected = [{"drift_type": "new_column", "column_name": new},
                    {"drift_type": "removed_column", "column_name": old}]  # fmt: skip
        b.add("movednonrename", before, after, expected)


def main() -> None:
    cases = build()
    OUT.write_text("".join(json.dumps(case, sort_keys=True) + "\n" for case in cases))
    print(f"{len(cases)} cases written to {OUT}")


if __name__ == "__main__":
    main()
