"""Side streams of the multi-stream model: hand joints and object crops, computed once and cached.

    hands.py         MediaPipe hand joints on ground-truth hand crops (in this process, or through
    hands_worker.py    a pipe to the hands environment's python running hands_worker.py)
    objects.py       object crops from ground-truth boxes, one slot per placeholder id
    compute.py       one video → its stream arrays (decode the annotated frames, then hands / objects)
    cache.py         the cache file format (<video_id>.npz) and where the cache folder is
    prepare.py       `vidrec prepare hands|objects`: every video, in worker processes, resumable
    side_input.py    the dataset's side input that reads the cache (or computes on the fly)

Nothing is imported here: ``vidrec.data.streams.cache`` needs no torch, the others do.
"""
