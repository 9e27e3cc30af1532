"""Call recordings: the stereo WAV recorder (customer left, agent right) and the on-disk storage.

:mod:`recordings.recorder` writes a crash-safe WAV as the call goes; :mod:`recordings.storage`
places files by date, expires them and verifies their hashes. Metadata tables and the recording
policy service live in :mod:`recordings.models` and :mod:`recordings.service`.
"""

from recordings.recorder import Channel, Gap, RecorderError, RecordingInfo, StereoWavRecorder, sha256_file
from recordings.storage import delete_expired, expired, recording_date, recording_path, safe_name, verify

__all__ = [
    "Channel",
    "Gap",
    "RecorderError",
    "RecordingInfo",
    "StereoWavRecorder",
    "delete_expired",
    "expired",
    "recording_date",
    "recording_path",
    "safe_name",
    "sha256_file",
    "verify",
]
