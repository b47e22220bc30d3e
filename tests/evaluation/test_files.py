"""Reading evaluation files: accepted formats, and a clear error for each kind of bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsdk.errors import ValidationFailed
from recsdk.evaluation.files import (
    check_known_users,
    item_categories,
    read_embeddings,
    read_interactions,
    read_items,
    read_recommendations,
    read_truth,
    read_users,
    write_table,
)
from tests.evaluation.conftest import write


def test_reads_csv_recommendations_with_optional_score(tmp_path):
    path = write(tmp_path / "recs.csv", "user,item,rank\nu1,a,1\nu1,b,2\nu2,a,1\n")
    recs = read_recommendations(path)
    assert recs[["user", "item", "rank"]].values.tolist() == [
        ["u1", "a", 1], ["u1", "b", 2], ["u2", "a", 1]]
    assert recs["score"].isna().all()


def test_sniffs_tsv_without_a_known_extension(tmp_path):
    path = write(tmp_path / "recs.txt", "user\titem\trank\tscore\nu1\ta\t1\t0.5\n")
    recs = read_recommendations(path)
    assert recs.loc[0, "item"] == "a"
    assert recs.loc[0, "score"] == 0.5


def test_accepts_recbole_atomic_headers(tmp_path):
    path = write(tmp_path / "data.inter",
                 "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                 "7\t42\t4\t881250949\n")
    frame = read_interactions(path)
    assert list(frame.columns) == ["user", "item", "rating", "timestamp"]
    assert frame.iloc[0].tolist() == ["7", "42", 4.0, 881250949.0]


def test_accepts_iso_dates_as_timestamps(tmp_path):
    path = write(tmp_path / "t.csv", "user,item,timestamp\nu,a,1970-01-02T00:00:00Z\nu,b,5\n")
    assert read_interactions(path)["timestamp"].tolist() == [86400.0, 5.0]


@pytest.mark.parametrize(("text", "expected"), [
    ("user,item\nu1,a\n", "missing column(s) ['rank']"),
    ("user,item,rank\nu1,a,1\nu1,b,1\n", "line 2, line 3: duplicate (user, rank)"),
    ("user,item,rank\nu1,a,1\nu1,b,2\nu1,c,x\n", "line 4: rank is not a number (e.g. 'x')"),
    ("user,item,rank\nu1,a,0\n", "line 2: rank must be a whole number from 1"),
    ("user,item,rank\nu1,a,1.5\n", "line 2: rank must be a whole number from 1"),
    ("user,item,rank\nu1,a,\n", "line 2: empty rank"),
    ("user,item,rank\nu1,,1\n", "line 2: empty item"),
    ("user,item,rank\nu1,a,1\nu1,a,2\n", "line 2, line 3: duplicate (user, item)"),
    ("user,item,rank,score\nu1,a,1,high\n", "line 2: score is not a number"),
])
def test_bad_recommendation_files_name_the_problem_and_line(tmp_path, text, expected):
    path = write(tmp_path / "recs.csv", text)
    with pytest.raises(ValidationFailed) as caught:
        read_recommendations(path)
    assert expected in str(caught.value)
    assert str(path) in str(caught.value)


def test_line_numbers_skip_blank_lines_as_the_reader_does(tmp_path):
    path = write(tmp_path / "recs.csv", "user,item,rank\n\nu1,a,1\n\nu1,b,oops\n")
    with pytest.raises(ValidationFailed, match="line 5: rank is not a number"):
        read_recommendations(path)


def test_long_lists_of_bad_lines_are_shortened(tmp_path):
    rows = "".join(f"u{i},a,x\n" for i in range(8))
    path = write(tmp_path / "recs.csv", "user,item,rank\n" + rows)
    with pytest.raises(ValidationFailed, match=r"line 2, .*line 6 and 3 more"):
        read_recommendations(path)


def test_in_memory_frames_are_located_by_row():
    from recsdk.evaluation.files import check_recommendations

    frame = pd.DataFrame({"user": ["u"], "item": ["a"], "rank": ["first"]})
    with pytest.raises(ValidationFailed, match="row 1: rank is not a number"):
        check_recommendations(frame)


def test_recommendations_for_users_missing_from_the_truth_are_an_error(tmp_path):
    recs = read_recommendations(write(tmp_path / "r.csv", "user,item,rank\nu1,a,1\nzz,a,1\n"))
    truth = read_truth(write(tmp_path / "t.csv", "user,item\nu1,a\n"))
    with pytest.raises(ValidationFailed, match=r"line 3: 1 user\(s\) not in the truth file, "
                                               r"e\.g\. 'zz'"):
        check_known_users(recs, truth)


@pytest.mark.parametrize(("text", "expected"), [
    ("user,item\n", "empty test set"),
    ("user,rank\nu1,1\n", "missing column(s) ['item']"),
    ("user,item\nu1,a\n,b\n", "line 3: empty user"),
    ("user,item,rating\nu1,a,five\n", "line 2: rating is not a number"),
    ("user,item,timestamp\nu1,a,yesterday\n", "line 2: timestamp is neither a number nor"),
])
def test_bad_truth_files_name_the_problem(tmp_path, text, expected):
    with pytest.raises(ValidationFailed) as caught:
        read_truth(write(tmp_path / "truth.csv", text))
    assert expected in str(caught.value)


def test_an_interactions_file_with_a_header_only_is_an_error(tmp_path):
    with pytest.raises(ValidationFailed, match="no interactions"):
        read_interactions(write(tmp_path / "train.csv", "user,item\n"))


def test_reads_users_in_file_order_without_repeats(tmp_path):
    assert read_users(write(tmp_path / "u.csv", "user\nb\na\nb\n")) == ["b", "a"]
    with pytest.raises(ValidationFailed, match="missing column"):
        read_users(write(tmp_path / "bad.csv", "name\nb\n"))
    with pytest.raises(ValidationFailed, match="no users"):
        read_users(write(tmp_path / "none.csv", "user\n"))


def test_items_split_recbole_token_seq_categories_only(tmp_path):
    recbole = write(tmp_path / "x.item",
                    "item_id:token\tmovie_title:token_seq\tclass:token_seq\n"
                    "1\tToy Story\tAnimation Comedy\n")
    plain = write(tmp_path / "items.csv",
                  "item,category,title\n1,Women's Tops,Blouse\n2,,Hat\n1,Sale,Blouse\n")
    movies = read_items(recbole, "class")
    assert movies["categories"].tolist() == [["Animation", "Comedy"]]
    assert movies.loc[0, "movie_title"] == "Toy Story"  # other columns are kept
    clothes = read_items(plain)
    assert clothes["item"].tolist() == ["1", "2"]
    assert clothes["categories"].tolist() == [["Women's Tops", "Sale"], []]
    assert item_categories(clothes).values.tolist() == [["1", "Women's Tops"], ["1", "Sale"]]
    with pytest.raises(ValidationFailed, match=r"missing column\(s\) \['genre'\]"):
        read_items(plain, "genre")


def test_embeddings_need_ids_and_one_vector_each(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, item_ids=np.array(["a", "b"]), vectors=np.eye(2))
    ids, vectors = read_embeddings(good)
    assert ids.tolist() == ["a", "b"] and vectors.shape == (2, 2)
    missing = tmp_path / "missing.npz"
    np.savez(missing, vectors=np.eye(2))
    with pytest.raises(ValidationFailed, match=r"missing array\(s\) \['item_ids'\]"):
        read_embeddings(missing)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, item_ids=np.array(["a"]), vectors=np.eye(2))
    with pytest.raises(ValidationFailed, match="expected 1 rows of vectors"):
        read_embeddings(wrong)


def test_object_arrays_in_embeddings_are_refused_not_unpickled(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, item_ids=np.array(["a", None], dtype=object), vectors=np.eye(2))
    with pytest.raises(ValueError, match="allow_pickle"):
        read_embeddings(path)


def test_write_table_picks_the_separator_and_keeps_whole_numbers_whole(tmp_path):
    frame = pd.DataFrame({"user": ["u"], "item": ["a"], "timestamp": [881250949.0],
                          "score": [0.25]})
    write_table(frame, tmp_path / "out.tsv")
    write_table(frame, tmp_path / "out.csv")
    assert (tmp_path / "out.tsv").read_text().splitlines() == [
        "user\titem\ttimestamp\tscore", "u\ta\t881250949\t0.25"]
    assert (tmp_path / "out.csv").read_text().splitlines()[1] == "u,a,881250949,0.25"
    assert read_interactions(tmp_path / "out.tsv")["timestamp"].tolist() == [881250949.0]


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        read_truth(tmp_path / "nope.csv")
