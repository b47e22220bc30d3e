"""Loaders on tiny files written here in each real format (no shared data needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from recsdk.data.loaders import (
    CLOTHING_COLUMNS,
    CLOTHING_EPOCH,
    load_clothing_reviews,
    load_recbole,
    load_table,
)
from recsdk.errors import ValidationFailed


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def recbole_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "mini"
    folder.mkdir()
    write(folder / "mini.inter", [
        "user_id:token\titem_id:token\trating:float\ttimestamp:float",
        "1\t10\t4\t881250949", "1\t11\t5\t881250999", "2\t10\t3\t891717742",
        "2\t12\tgreat\t891717743", "3\t11\t2\tlater",
    ])
    write(folder / "mini.item", [
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
        "10\tToy Story\t1995\tAnimation Children's Comedy", "11\tHeat\t1995\tAction Crime",
        "12\tunknown\t\t",
    ])
    write(folder / "mini.user", [
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token",
        "1\t24\tM\ttechnician\t08711", "2\t53\tF\tother\t94043",
    ])
    return folder


def test_recbole_directory_becomes_a_shop(recbole_dir):
    data = load_recbole(recbole_dir)
    events = data.events
    assert events["type"].tolist() == ["rating"] * 3
    assert events["value"].tolist() == [4.0, 5.0, 3.0]
    assert events["timestamp"].iloc[0] == pd.Timestamp(881250949, unit="s", tz="UTC")
    assert events["_row"].tolist() == [0, 1, 2]
    report = data.report.tables["events"]
    assert report.count("invalid_value") == 1
    assert report.outcome("invalid_value").examples[0] == {
        "row": 3, "user_id": "2", "item_id": "12", "type": "rating",
        "timestamp": "891717743", "value": "great"}
    assert report.count("unparseable_timestamp") == 1
    report.check_balance()
    items = data.items.set_index("id")
    assert items.loc["10", "title"] == "Toy Story"
    assert items.loc["10", "category_id"] == "movies/animation"
    assert items.loc["10", "tags"] == ["animation", "children's", "comedy"]
    assert items.loc["10", "attributes"] == {"release_year": 1995}
    assert pd.isna(items.loc["12", "category_id"]) and items.loc["12", "tags"] == []
    cats = data.categories.set_index("id")
    assert cats.loc["movies", "name"] == "Movies" and pd.isna(cats.loc["movies", "parent_id"])
    assert set(cats.index) == {"movies", "movies/animation", "movies/children-s",
                               "movies/comedy", "movies/action", "movies/crime"}
    assert (cats.drop("movies")["parent_id"] == "movies").all()
    users = data.users.set_index("id")
    assert users.loc["1", "attributes"] == {"age": 24, "gender": "M",
                                            "occupation": "technician", "zip": "08711"}


def test_recbole_single_file_reads_its_siblings(recbole_dir):
    data = load_recbole(recbole_dir / "mini.inter")
    assert len(data.events) == 3 and len(data.items) == 3 and len(data.users) == 2


def test_recbole_without_files_or_with_two_is_an_error(tmp_path, recbole_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValidationFailed, match="no RecBole"):
        load_recbole(empty)
    write(recbole_dir / "other.inter", ["user_id:token\titem_id:token"])
    with pytest.raises(ValidationFailed, match=r"two \.inter"):
        load_recbole(recbole_dir)
    with pytest.raises(FileNotFoundError):
        load_recbole(tmp_path / "missing")
    odd = tmp_path / "odd"
    odd.mkdir()
    write(odd / "odd.inter", ["person:token\titem_id:token", "1\t2"])
    with pytest.raises(ValidationFailed, match="user_id and item_id"):
        load_recbole(odd)


def test_clothing_reviews_become_products_tree_and_anonymous_reviewers(tmp_path):
    header = ",".join(CLOTHING_COLUMNS)
    path = write(tmp_path / "reviews.csv", [
        header,
        '767,33,,"Silky and comfortable",4,1,0,Initmates,Intimate,Intimates',
        '767,40,Love it,"Love, love it",5,1,2,Initmates,Intimate,Intimates',
        '767,51,Love it,,3,0,0,General,Tops,Knits',
        '1080,34,Pretty,"So pretty",5,1,4,General,Dresses,Dresses',
        '1080,60,Meh,"Design flaws",x,0,0,General,Dresses,Dresses',
        '55,25,,,4,1,0,,,',
    ])
    data = load_clothing_reviews(path)
    cats = data.categories.set_index("id")
    assert cats.loc["initmates/intimate/intimates", "parent_id"] == "initmates/intimate"
    assert cats.loc["general/tops/knits", "name"] == "Knits"
    assert pd.isna(cats.loc["general", "parent_id"])
    items = data.items.set_index("id")
    assert items.loc["767", "category_id"] == "initmates/intimate/intimates"
    assert items.loc["767", "title"] == "Love it"
    assert items.loc["767", "description"] == "Silky and comfortable Love, love it"
    assert items.loc["767", "attributes"] == {
        "review_count": 3, "mean_rating": 4.0, "recommended_share": 0.667,
        "division": "Initmates", "department": "Intimate", "class": "Intimates"}
    assert items.loc["55", "title"] == "Clothing 55" and pd.isna(items.loc["55", "category_id"])
    assert data.report.tables["items"].count("category_by_majority") == 1
    assert data.report.tables["items"].count("no_category") == 1
    events = data.events
    assert events["user_id"].tolist() == ["review-0", "review-1", "review-2", "review-3",
                                          "review-5"]
    assert events["type"].tolist() == ["review", "review", "rating", "review", "rating"]
    assert events["value"].tolist() == [4.0, 5.0, 3.0, 5.0, 4.0]
    assert events["timestamp"].iloc[4] == pd.Timestamp(CLOTHING_EPOCH) + pd.Timedelta(seconds=5)
    assert events["context"].iloc[1] == {"recommended": True, "positive_feedback": 2}
    assert data.report.tables["events"].count("invalid_value") == 1
    users = data.users.set_index("id")
    assert len(users) == 6 and users.loc["review-1", "attributes"] == {"anonymous": True,
                                                                       "age": 40}


def test_clothing_loader_refuses_another_csv(tmp_path):
    path = write(tmp_path / "other.csv", ["Clothing ID,Rating", "1,5"])
    with pytest.raises(ValidationFailed, match="not the clothing reviews"):
        load_clothing_reviews(path)


def test_csv_with_a_column_mapping(tmp_path):
    path = write(tmp_path / "orders.csv", [
        "customer,sku,ts,action,amount",
        "c1,s1,2024-01-01T10:00:00Z,purchase,19.9",
        "c2,s2,1704103200,view,",
        "c3,,2024-01-01,view,",
    ])
    data = load_table(path, {"customer": "user_id", "sku": "item_id", "ts": "timestamp",
                             "action": "type", "amount": "value"})
    assert data.events["user_id"].tolist() == ["c1", "c2"]
    assert data.events["timestamp"].tolist() == [pd.Timestamp("2024-01-01T10:00", tz="UTC"),
                                                 pd.Timestamp(1704103200, unit="s", tz="UTC")]
    assert data.events["value"].iloc[0] == 19.9
    assert data.report.tables["events"].count("missing_item_id") == 1


def test_unknown_columns_are_refused_kept_or_ignored(tmp_path):
    path = write(tmp_path / "log.tsv", ["user_id\titem_id\ttype\ttimestamp\tpage\tdevice",
                                        "u1\ti1\tview\t2024-01-01\thome\t",
                                        "u2\ti2\tclick\t2024-01-02\tcart\tios"])
    with pytest.raises(ValidationFailed) as err:
        load_table(path)
    assert "page" in str(err.value) and "device" in str(err.value)
    kept = load_table(path, extra="keep")
    assert kept.events["context"].tolist() == [{"page": "home"}, {"page": "cart",
                                                                  "device": "ios"}]
    ignored = load_table(path, extra="ignore")
    assert "context" not in ignored.events.columns
    note = ignored.report.tables["events"].outcome("ignored_columns")
    assert "page" in note.reason


@pytest.mark.parametrize(("mapping", "message"), [
    ({"nope": "user_id"}, "does not have"),
    ({"u": "customer_id"}, "not events fields"),
    ({"u": "user_id", "v": "user_id"}, "more than one column"),
])
def test_bad_mappings_name_the_problem(tmp_path, mapping, message):
    path = write(tmp_path / "log.csv", ["u,v,item_id,type,timestamp", "a,b,i,view,2024-01-01"])
    with pytest.raises(ValidationFailed, match=message):
        load_table(path, mapping)


def test_events_need_a_type_and_a_timestamp_unless_told_otherwise(tmp_path):
    path = write(tmp_path / "buys.csv", ["user_id,item_id", "u1,i1"])
    with pytest.raises(ValidationFailed, match="type column"):
        load_table(path)
    with pytest.raises(ValidationFailed, match="timestamp column"):
        load_table(path, default_type="purchase")
    data = load_table(path, default_type="purchase", missing_timestamp="now")
    assert data.events["type"].tolist() == ["purchase"]
    assert data.events["timestamp"].notna().all()


def test_json_lines_keep_types_and_nested_context(tmp_path):
    path = tmp_path / "events.jsonl"
    rows = [{"user_id": 7, "item_id": "i1", "type": "rating", "value": 4,
             "timestamp": 1_700_000_000, "context": {"page": "pdp", "pos": 2}},
            {"user_id": "u2", "item_id": "i2", "type": "view",
             "timestamp": "2024-01-01T00:00:00+01:00", "event_id": "e-2"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    data = load_table(path)
    assert data.events["user_id"].tolist() == ["7", "u2"]
    assert data.events["context"].iloc[0] == {"page": "pdp", "pos": 2}
    assert data.events["event_id"].iloc[1] == "e-2"
    assert data.events["timestamp"].iloc[1] == pd.Timestamp("2023-12-31T23:00", tz="UTC")


def test_catalogue_tables(tmp_path):
    cats = write(tmp_path / "cats.csv", ["id,name,parent_id", "all,All,", "hats,Hats,all"])
    items = write(tmp_path / "items.csv", [
        "sku,name,category_id,price,tags,colour",
        "h1,Wool hat,hats,12.5,winter|wool,red", "h2,Cap,hats,oops,,blue"])
    users = write(tmp_path / "users.csv", ["id,age,city", "u1,31,Leeds"])
    assert load_table(cats, kind="categories").categories["id"].tolist() == ["all", "hats"]
    data = load_table(items, {"sku": "id", "name": "title"}, kind="items", extra="keep")
    assert data.items["id"].tolist() == ["h1"]
    row = data.items.iloc[0]
    assert row["tags"] == ["winter", "wool"] and row["attributes"] == {"colour": "red"}
    assert row["price"] == 12.5
    assert data.report.tables["items"].count("malformed_price") == 1
    people = load_table(users, kind="users", extra="keep")
    assert people.users["attributes"].tolist() == [{"age": "31", "city": "Leeds"}]
    with pytest.raises(ValidationFailed, match="no place"):
        load_table(write(tmp_path / "c2.csv", ["id,colour", "a,red"]), kind="categories",
                   extra="keep")
    with pytest.raises(ValueError, match="kind"):
        load_table(cats, kind="orders")
