"""``recsdk import``: format detection, mapping, cleaning, reports and the database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from recsdk.cli import cli
from recsdk.data.loaders import CLOTHING_COLUMNS
from recsdk.storage.store import Store

HOST_VARIABLES = ("RECSDK_CONFIG", "RECSDK_DATABASE_URL", "RECSDK_REDIS_URL",
                  "RECSDK_PLUGINS", "RECSDK_SEED", "RECSDK_API_KEY")


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def run(tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.db'}"

    def invoke(*args: str, database_url: str = url) -> Result:
        env = dict.fromkeys(HOST_VARIABLES)
        env["RECSDK_DATABASE_URL"] = database_url
        return CliRunner().invoke(cli, ["import", *args], env=env, catch_exceptions=False)

    invoke.url = url  # type: ignore[attr-defined]
    return invoke


@pytest.fixture
def orders(tmp_path) -> Path:
    return write(tmp_path / "orders.csv", [
        "customer,sku,ts,action",
        "c1,s1,2024-01-01T10:00:00Z,view", "c1,s1,2024-01-01T10:00:00Z,view",
        "c1,s2,2024-01-01T10:02:00Z,purchase", "c2,s1,soon,view",
        "c2,s3,1704103200,Click",
    ])


def counts(url: str) -> dict[str, int]:
    store = Store(url)
    try:
        return {"events": store.count_events(), "items": len(store.items_frame()),
                "users": len(store.users_frame()),
                "categories": len(store.categories_frame())}
    finally:
        store.close()


def test_csv_import_with_mapping_cleans_and_reports(run, orders, tmp_path):
    report_path = tmp_path / "report.json"
    result = run(str(orders), "-m", "customer=user_id,sku=item_id", "--mapping", "ts=timestamp",
                 "-m", "action=type", "--report-json", str(report_path))
    assert result.exit_code == 0, result.output
    assert "unparseable_timestamp: dropped 1" in result.output
    assert "duplicate_row: dropped 1" in result.output
    assert "type_normalised: changed 1" in result.output
    assert "3 events" in result.output.splitlines()[-1]
    assert counts(run.url)["events"] == 3
    report = json.loads(report_path.read_text())
    assert report["load"]["tables"]["events"]["dropped_rows"] == 1
    assert report["clean"]["dropped_rows"] == 1


def test_no_clean_keeps_duplicates_but_still_skips_invalid_rows(run, orders):
    result = run(str(orders), "-m", "customer=user_id,sku=item_id,ts=timestamp,action=type",
                 "--no-clean")
    assert result.exit_code == 0, result.output
    assert counts(run.url)["events"] == 4


def test_strict_and_dry_run_write_nothing(run, orders):
    mapping = "customer=user_id,sku=item_id,ts=timestamp,action=type"
    strict = run(str(orders), "-m", mapping, "--strict")
    assert strict.exit_code == 1
    assert "--strict: 1 rows would be skipped" in strict.output
    dry = run(str(orders), "-m", mapping, "--dry-run")
    assert dry.exit_code == 0 and "dry run: would write 0 categories" in dry.output
    assert not Path(run.url.removeprefix("sqlite:///")).exists()


def test_mapping_and_column_mistakes_are_one_line_errors(run, orders):
    unknown = run(str(orders))
    assert unknown.exit_code == 1
    assert "unknown column(s)" in unknown.output and "customer" in unknown.output
    malformed = run(str(orders), "-m", "customer")
    assert malformed.exit_code == 2 and "not column=field" in malformed.output
    missing = run(str(orders.parent / "nope.csv"))
    assert missing.exit_code == 2 and "does not exist" in missing.output
    twice = run(str(orders), "-m", "customer=user_id", "-m", "customer=item_id")
    assert twice.exit_code == 2 and "mapped twice" in twice.output
    not_a_table = run(str(orders.parent), "--format", "csv")
    assert not_a_table.exit_code == 2 and "directory" in not_a_table.output


def test_mapping_only_applies_to_generic_tables(run, tmp_path):
    folder = tmp_path / "rb"
    folder.mkdir()
    write(folder / "rb.inter", ["user_id:token\titem_id:token\ttimestamp:float",
                                "1\t10\t881250949"])
    result = run(str(folder), "-m", "a=user_id")
    assert result.exit_code == 2 and "generic tables" in result.output


def test_recbole_directory_and_catalogue_tables(run, tmp_path):
    folder = tmp_path / "mini"
    folder.mkdir()
    write(folder / "mini.inter", ["user_id:token\titem_id:token\trating:float\ttimestamp:float",
                                  "1\t10\t4\t881250949", "2\t11\t5\t881250999"])
    write(folder / "mini.item", ["item_id:token\tmovie_title:token_seq\tclass:token_seq",
                                 "10\tToy Story\tAnimation Comedy", "11\tHeat\tAction"])
    write(folder / "mini.user", ["user_id:token\tage:token", "1\t24", "2\t53"])
    result = run(str(folder))
    assert result.exit_code == 0, result.output
    assert counts(run.url) == {"events": 2, "items": 2, "users": 2, "categories": 4}
    items = write(tmp_path / "items.csv", ["id,title,category_id,price", "x1,Extra,movies,3"])
    more = run(str(items), "--kind", "items")
    assert more.exit_code == 0, more.output
    assert counts(run.url)["items"] == 3
    orphan = write(tmp_path / "orphans.csv", ["id,category_id", "x2,nowhere"])
    refused = run(str(orphan), "--kind", "items")
    assert refused.exit_code == 1 and "Unknown category" in refused.output


def test_clothing_reviews_are_detected_by_their_header(run, tmp_path):
    path = write(tmp_path / "reviews.csv", [
        ",".join(CLOTHING_COLUMNS),
        '767,33,Nice,"Soft",4,1,0,Initmates,Intimate,Intimates',
        '1080,34,,"Pretty",5,1,4,General,Dresses,Dresses'])
    result = run(str(path))
    assert result.exit_code == 0, result.output
    assert counts(run.url) == {"events": 2, "items": 2, "users": 2, "categories": 6}


@pytest.mark.postgres
def test_import_into_postgresql(run, orders, postgres_db):
    Store(postgres_db).close()
    result = run(str(orders), "-m", "customer=user_id,sku=item_id,ts=timestamp,action=type",
                 database_url=postgres_db)
    assert result.exit_code == 0, result.output
    assert counts(postgres_db)["events"] == 3


@pytest.mark.parametrize(("name", "text", "words"), [
    ("empty.csv", "", "the file is empty"),
    ("blank.jsonl", "\n\n", "the file is empty"),
    ("header.csv", "user_id,item_id,type,timestamp\n",
     "has a header (user_id, item_id, type, timestamp) but no rows"),
    ("header.tsv", "user_id\titem_id\ttype\ttimestamp\n", "but no rows"),
    ("ml.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n",
     "but no rows"),
])
def test_an_empty_or_header_only_file_is_a_clear_error(run, tmp_path, name, text, words):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["import", str(path)],
                                env={**dict.fromkeys(HOST_VARIABLES),
                                     "RECSDK_DATABASE_URL": run.url})
    assert result.exit_code == 1
    assert words in result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit
