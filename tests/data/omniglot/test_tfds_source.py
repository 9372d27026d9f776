"""The TFDS source: TFDS's own omniglot builder, prepared offline from the archives, gives the archives' arrays.

Nothing here reaches the network. TFDS's download manager is handed the official archives,
extracted into pytest's tmp folder (one folder per archive holding ``images_xxx/``, as TFDS's
extractor lays them out), instead of fetching them from github.com. The rest is TFDS's own:
the omniglot builder (its walk of the folders, its labels, alphabet names and example keys),
the example serializer, the array_record writer, and the data source that reads the examples
back. TFDS prepares omniglot through TensorFlow, which the dev install leaves out (1.6 GB): the
builder's one call into it, ``tf.io.gfile.listdir``, is answered by ``os.listdir`` here.
Reading the prepared data needs neither TensorFlow nor a download (the ``offline`` fixture).
"""

import json
import os
import sys
import types
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxmeta.data.omniglot import ARCHIVES, Omniglot, load_omniglot
from jaxmeta.data.omniglot import tfds_source
from jaxmeta.data.omniglot.archives import read_archive


# Preparing the TFDS copy of Omniglot (the module's fixture) takes tens of seconds: out of the quick loop.
pytestmark = pytest.mark.long


@pytest.fixture(scope="module")
def tfds_data_dir(omniglot_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tfds")
    extracted = {}
    for stem in ARCHIVES.values():
        with zipfile.ZipFile(omniglot_root / f"{stem}.zip") as archive:
            archive.extractall(tmp / "extracted" / stem)
        extracted[f"{stem}.zip"] = tmp / "extracted" / stem
    requested = []

    def download_and_extract(manager, urls):
        requested.extend(urls.values())
        return {name: extracted[url.rsplit("/", 1)[-1]] for name, url in urls.items()}

    builder_module = sys.modules[tfds.builder_cls("omniglot").__module__]
    gfile = types.SimpleNamespace(listdir=lambda path: sorted(os.listdir(path)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tfds.download.DownloadManager, "download_and_extract", download_and_extract)
        patch.setattr(builder_module, "tf", types.SimpleNamespace(io=types.SimpleNamespace(gfile=gfile)))
        tfds_source.prepare(tmp / "tfds")
    assert sorted(url.rsplit("/", 1)[-1] for url in requested) == sorted(extracted)  # the official four
    return tmp / "tfds"


@pytest.fixture
def offline(monkeypatch):
    def refuse(manager, urls):
        raise AssertionError(f"prepared TFDS data must be read without downloading {urls}")

    monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract", refuse)


@pytest.mark.parametrize("subset", list(ARCHIVES))
def test_tfds_gives_the_archives_characters_and_drawings_in_order(omniglot_root, tfds_data_dir, offline, subset):
    builder = tfds_source.prepare(tfds_data_dir)
    from_tfds = tfds_source.read_split(builder, subset)
    from_archive = read_archive(omniglot_root / f"{ARCHIVES[subset]}.zip", subset)
    assert [c[:2] for c in from_tfds] == [c[:2] for c in from_archive]  # alphabets and characters, in order
    assert from_tfds == from_archive  # and every drawing's PNG bytes, in the drawers' order


def test_tfds_and_archives_give_the_same_omniglot(omniglot, tfds_data_dir, offline, tmp_path):
    data = load_omniglot(source="tfds", data_dir=tfds_data_dir, cache_dir=tmp_path)
    assert isinstance(data, Omniglot)
    for field in Omniglot._fields:
        np.testing.assert_array_equal(getattr(data, field), getattr(omniglot, field), err_msg=field)
    assert data.images.dtype == omniglot.images.dtype and data.alphabet.dtype == omniglot.alphabet.dtype


def test_the_sources_keep_separate_caches(omniglot_root, tfds_data_dir, offline, tmp_path, monkeypatch):
    subsets = ("background_small2",)
    from_archive = load_omniglot(omniglot_root, subsets=subsets, cache_dir=tmp_path)
    from_tfds = load_omniglot(source="tfds", data_dir=tfds_data_dir, subsets=subsets, cache_dir=tmp_path)
    files = sorted(tmp_path.glob("omniglot-*.npz"))
    assert len(files) == 2
    keys = set()
    for file in files:
        with np.load(file) as stored:
            keys.add(json.loads(str(stored["meta"]))["key"])
    assert len(keys) == 2

    monkeypatch.setattr(tfds_source, "read_split", lambda *args: pytest.fail("the cache was not used"))
    again = load_omniglot(source="tfds", data_dir=tfds_data_dir, subsets=subsets, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.images, from_tfds.images)
    np.testing.assert_array_equal(from_archive.images, from_tfds.images)


def test_tfds_data_that_is_not_the_release_is_refused(tfds_data_dir, offline):
    builder = tfds_source.prepare(tfds_data_dir)
    source = builder.as_data_source(split="small1", decoders={"image": tfds.decode.SkipDecoding()})
    examples = list(source.__getitems__(range(len(source))))
    features = builder.info.features
    names = features["alphabet"].names, features["label"].names

    def read(examples):
        return tfds_source.characters_from_examples(examples, "background_small1", *names)

    assert len(read(examples)) == 136
    with pytest.raises(ValueError, match="1 characters do not have 20 drawings"):
        read(examples[1:])
    first = (examples[0]["alphabet"], examples[0]["alphabet_char_id"])
    with pytest.raises(ValueError, match="holds 135 characters, the official background_small1 set has 136"):
        read([e for e in examples if (e["alphabet"], e["alphabet_char_id"]) != first])
    with pytest.raises(ValueError, match="is not stored in the order TFDS omniglot:3.0.0 writes"):
        read(examples[::-1])
    relabelled = [dict(e, label=e["label"] + 1) if i == 5 else e for i, e in enumerate(examples)]
    with pytest.raises(ValueError, match="carry the labels"):
        read(relabelled)
    decoded = [dict(e, image=np.zeros((105, 105, 3), np.uint8)) if i == 0 else e for i, e in enumerate(examples)]
    with pytest.raises(ValueError, match="holds a decoded image"):
        read(decoded)


def test_data_prepared_in_another_file_format_is_refused(tfds_data_dir, tmp_path):
    prepared = tfds_data_dir / "omniglot" / "3.0.0"
    tfrecord = tmp_path / "omniglot" / "3.0.0"  # what tfds.load("omniglot") leaves: TFDS's default format
    tfrecord.mkdir(parents=True)
    for file in prepared.glob("*.*"):
        if file.suffix in (".json", ".txt"):
            text = file.read_text()
            if file.name == "dataset_info.json":
                assert '"fileFormat": "array_record"' in text
                text = text.replace('"fileFormat": "array_record"', '"fileFormat": "tfrecord"')
            (tfrecord / file.name).write_text(text)
    with pytest.raises(ValueError, match="holds TFDS omniglot data in another file format.*pass another data_dir="):
        load_omniglot(source="tfds", data_dir=tmp_path, subsets=("background_small1",), cache=False)


def test_missing_packages_and_network_name_the_fix(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="Unknown Omniglot source 'hub'"):
        load_omniglot(source="hub")
    with pytest.raises(ValueError, match="root= is the archives' folder"):
        load_omniglot(tmp_path, source="tfds")
    with pytest.raises(ValueError, match="data_dir= is TFDS's data folder"):
        load_omniglot(tmp_path, data_dir=tmp_path)
    with pytest.raises(ValueError, match="Unknown Omniglot subset 'images'"):
        tfds_source.read_split(None, "images")

    def no_tensorflow(manager, urls):  # how TFDS's extractor fails without TensorFlow
        try:
            raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")
        except ModuleNotFoundError as error:
            raise RuntimeError("Error while extracting images_background.zip") from error

    monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract", no_tensorflow)
    with pytest.raises(ImportError, match=r"needs the Python module 'tensorflow'.*pip install 'jaxmeta\[tfds\]'"):
        load_omniglot(source="tfds", data_dir=tmp_path / "no-tf")

    def renamed(manager, urls):  # TFDS also re-raises them under its own message, without the name
        try:
            raise ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow")
        except ModuleNotFoundError as error:
            raise ModuleNotFoundError(
                'Failed to construct dataset "omniglot": No module named \'tensorflow\'') from error

    monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract", renamed)
    with pytest.raises(ImportError, match=r"needs the Python module 'tensorflow'"):
        load_omniglot(source="tfds", data_dir=tmp_path / "no-tf-2")

    def no_network(manager, urls):
        raise OSError("Failed to resolve 'github.com'")

    monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract", no_network)
    with pytest.raises(OSError, match="needs internet access.*use source='archives'"):
        load_omniglot(source="tfds", data_dir=tmp_path / "offline")

    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(ImportError,
                       match=r"needs TensorFlow Datasets, an optional extra.*pip install 'jaxmeta\[tfds\]'"):
        load_omniglot(source="tfds")
