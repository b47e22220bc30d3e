"""Catalogue checks: which problems skip a row, which refuse the table, and that what
passes them passes recsdk's schemas."""

from __future__ import annotations

import pandas as pd
import pytest

from recsdk.data.catalog_checks import check_categories, check_items, check_users
from recsdk.data.frames import CATEGORY_COLUMNS, ITEM_COLUMNS, USER_COLUMNS, frame_records
from recsdk.errors import ValidationFailed
from recsdk.schemas import CategorySchema, ItemSchema, UserSchema, load_many


def items(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows), dtype=object)


def test_unreadable_item_rows_are_skipped_and_named():
    frame = items(
        {"id": "a", "price": "9.5", "stock": "3", "active": "yes", "tags": "red|summer|"},
        {"id": None, "price": "1"},
        {"id": "b", "price": "cheap"},
        {"id": "c", "stock": "2.5"},
        {"id": "d", "active": "perhaps"},
        {"id": "e", "tags": '["ok", 5]', "attributes": '{"colour": "red"}'},
        {"id": "f", "attributes": "[1, 2]"},
        {"id": "g", "tags": "x" * 129},
        {"id": "a", "price": "10.0", "title": 42},
    )
    out, report = check_items(frame)
    report.check_balance()
    assert out["id"].tolist() == ["e", "a"]
    skipped = {r.rule: [e["row"] for e in r.examples] for r in report.rules
               if r.action == "dropped"}
    assert skipped == {"missing_id": [1], "duplicate_id": [0], "malformed_price": [2],
                       "malformed_stock": [3], "malformed_active": [4],
                       "malformed_tags": [7], "malformed_attributes": [6]}
    e = out.set_index("id").loc["e"]
    assert e["tags"] == ["ok", "5"] and e["attributes"] == {"colour": "red"}
    a = out.set_index("id").loc["a"]
    assert a["price"] == 10.0 and a["title"] == "42"


@pytest.mark.parametrize(("column", "value"), [("price", "-1"), ("original_price", -0.5),
                                               ("stock", "-2")])
def test_negative_prices_and_stock_refuse_the_table(column, value):
    frame = items({"id": "a", "price": "5"}, {"id": "b", column: value})
    with pytest.raises(ValidationFailed) as err:
        check_items(frame)
    assert list(err.value.messages) == [1]
    assert list(err.value.messages[1]) == [column]
    assert "negative" in err.value.messages[1][column][0]


def test_unknown_item_categories_are_an_error_or_cleared():
    frame = items({"id": "a", "category_id": "shoes"}, {"id": "b", "category_id": "hats"})
    with pytest.raises(ValidationFailed) as err:
        check_items(frame, category_ids={"shoes"})
    assert list(err.value.messages) == [1]
    out, report = check_items(frame, category_ids={"shoes"}, unknown_category="clear")
    assert out["category_id"].isna().tolist() == [False, True]
    assert report.count("unknown_category_cleared") == 1
    unchecked, _ = check_items(frame)  # no category list: nothing to check against
    assert unchecked["category_id"].tolist() == ["shoes", "hats"]


def test_checked_items_pass_the_item_schema():
    frame = items(
        {"id": 7, "title": "Hat", "price": "12", "original_price": "15", "stock": "0",
         "active": "false", "tags": "wool| winter ", "attributes": {"size": "M"},
         "image_url": "https://example.com/h.jpg", "category_id": "hats"},
        {"id": "x2", "price": 3, "description": None},
    )
    out, report = check_items(frame, category_ids={"hats"})
    assert report.dropped_rows == 0
    loaded = load_many(ItemSchema(), frame_records(out, ITEM_COLUMNS), "items")
    assert loaded[0] == {"id": "7", "title": "Hat", "price": 12.0, "original_price": 15.0,
                         "stock": 0, "active": False, "tags": ["wool", "winter"],
                         "attributes": {"size": "M"}, "image_url": "https://example.com/h.jpg",
                         "category_id": "hats"}
    assert loaded[1] == {"id": "x2", "price": 3.0}


def test_categories_need_known_parents_and_no_cycles():
    ok, report = check_categories(pd.DataFrame({
        "id": ["root", "shoes", "shoes", ""], "name": ["Root", None, "Shoes", "x"],
        "parent_id": [None, "root", "root", None]}))
    assert ok["id"].tolist() == ["root", "shoes"]
    assert ok.set_index("id").loc["shoes", "name"] == "Shoes"
    assert report.count("duplicate_id") == 1 and report.count("missing_id") == 1
    load_many(CategorySchema(), frame_records(ok, CATEGORY_COLUMNS), "categories")
    odd, report = check_categories(pd.DataFrame({"id": ["a", "b"], "name": ["A", "n" * 256],
                                                 "parent_id": [7.5, None]}))
    assert odd.empty
    assert report.count("invalid_parent_id") == 1 and report.count("invalid_name") == 1
    named, report = check_categories(pd.DataFrame({"id": ["a"], "name": [None]}))
    assert named["name"].tolist() == ["a"] and report.count("name_from_id") == 1
    with pytest.raises(ValidationFailed) as err:
        check_categories(pd.DataFrame({"id": ["a", "b"], "parent_id": [None, "nowhere"]}))
    assert list(err.value.messages) == [1]
    known, _ = check_categories(pd.DataFrame({"id": ["b"], "parent_id": ["stored"]}),
                                known={"stored"})
    assert known["id"].tolist() == ["b"]
    with pytest.raises(ValidationFailed, match="cycle"):
        check_categories(pd.DataFrame({"id": ["a", "b", "c"], "parent_id": ["b", "a", None]}))
    with pytest.raises(ValidationFailed, match="own parent"):
        check_categories(pd.DataFrame({"id": ["a"], "parent_id": ["a"]}))


def test_users_need_ids_and_object_attributes():
    out, report = check_users(pd.DataFrame({
        "id": ["u1", "u2", None, "u3"],
        "attributes": [{"age": 30}, "not json", {"x": 1}, '{"gender": "F"}']}))
    assert out["id"].tolist() == ["u1", "u3"]
    assert out["attributes"].tolist() == [{"age": 30}, {"gender": "F"}]
    assert report.count("malformed_attributes") == 1 and report.count("missing_id") == 1
    load_many(UserSchema(), frame_records(out, USER_COLUMNS), "users")
    bare, _ = check_users(pd.DataFrame({"id": ["u9"]}))
    assert bare["attributes"].tolist() == [{}]


def test_imported_items_follow_the_api_rules():
    frame = items(
        {"id": "ok", "title": "Shoe", "attributes": '{"group_id": "g1"}', "stock": "3"},
        {"id": "nul", "title": "a\x00b"},
        {"id": "long", "title": "t" * 1001},
        {"id": "surrogate", "description": "\ud800"},
        {"id": "url", "image_url": "x\x00.png"},
        {"id": "group", "attributes": '{"group_id": []}'},
        {"id": "inf", "attributes": '{"x": Infinity}'},
        {"id": "deep", "attributes": '{"a":' * 20 + "1" + "}" * 20},
        {"id": "stock", "stock": "2147483648"},
        {"id": "tags", "tags": "|".join(["t"] * 101)},
        {"id": "tag", "tags": ["a\x00"]},
    )
    out, report = check_items(frame)
    assert out["id"].tolist() == ["ok"]
    skipped = {e["row"]: r.rule for r in report.rules if r.action == "dropped"
               for e in r.examples}
    assert skipped == {1: "invalid_title", 2: "invalid_title", 3: "invalid_description",
                       4: "invalid_image_url", 5: "malformed_attributes",
                       6: "malformed_attributes", 7: "malformed_attributes",
                       8: "malformed_stock", 9: "malformed_tags", 10: "malformed_tags"}
    load_many(ItemSchema(), frame_records(out, ITEM_COLUMNS), "items")  # the API agrees


def test_imported_users_and_categories_follow_the_api_rules():
    users, _ = check_users(pd.DataFrame([{"id": "u", "attributes": {"k": "v\x00"}},
                                         {"id": "v", "attributes": {"k": 1}}], dtype=object))
    assert users["id"].tolist() == ["v"]
    chain = pd.DataFrame([{"id": f"c{i}", "parent_id": f"c{i - 1}" if i else None}
                          for i in range(40)], dtype=object)
    with pytest.raises(ValidationFailed, match="Category chain too deep"):
        check_categories(chain)
    names, _ = check_categories(pd.DataFrame([{"id": "a", "name": "x\x00"}, {"id": "b"}],
                                             dtype=object))
    assert names["id"].tolist() == ["b"]
