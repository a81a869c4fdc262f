import pytest

from pipeline.errors import InputError
from pipeline.inputs import InputUploader, content_uri
from pipeline.settings import Settings
from pipeline.storage import S3Uri, Storage
from tests.pipeline.fakes import png

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


@pytest.fixture
def storage(s3_env):
    return Storage.from_settings(
        Settings.from_environ(
            {
                **s3_env,
                "FILLPIPE_REDIS_URL": "redis://unused",
                "FILLPIPE_PROVIDER_URL": "http://x",
                "FILLPIPE_PROVIDER_KEY": "k",
                "FILLPIPE_PUBLIC_URL": "http://x",
                "FILLPIPE_SIGNING_KEY": "s" * 40,
            }
        )
    )


def test_local_files_upload_once_by_content(storage, tmp_path):
    photo = tmp_path / "my photos" / "a+b.PNG"
    photo.parent.mkdir()
    photo.write_bytes(png(color=(1, 2, 3)))
    copy = tmp_path / "copy.png"
    copy.write_bytes(photo.read_bytes())
    first = InputUploader(storage, "fillpipe", tmp_path)
    uri = first.resolve("my photos/a+b.PNG")
    assert uri == str(content_uri("fillpipe", photo.read_bytes(), ".png"))
    assert first.resolve(str(copy)) == uri and first.uploads <= 1
    again = InputUploader(storage, "fillpipe", tmp_path)
    assert again.resolve(str(photo)) == uri and again.uploads == 0
    assert storage.read(S3Uri.parse(uri), max_bytes=1 << 20) == photo.read_bytes()


def test_s3_locations_pass_through(storage, tmp_path):
    assert InputUploader(storage, "fillpipe", tmp_path).resolve("s3://b/k.png") == "s3://b/k.png"


def test_missing_local_file_is_an_input_error(storage, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        InputUploader(storage, "fillpipe", tmp_path).resolve("nope.png")
