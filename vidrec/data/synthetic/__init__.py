"""The built-in synthetic dataset (``vidrec synth``): real video files whose classes differ only in time.

A hand-like blob (skin ellipse, fingers, arm) moves, pushes, or puts away a coloured shape.
Every class pair is built so that its two classes differ only in temporal order: the second
class of a pair is the exact time-reversal of a scene drawn from the same random distribution
(left→right vs right→left, up vs down, towards vs away from the camera, into vs out of a box),
so a model that averages frames over time sits near chance within each pair, while a temporal
model can solve it. (The push / pretend-to-push pair is not a time-reversal: its only static
cue is that a pushed object leaves the frame in its last frames.)

Layout written under ``out`` (all official formats, so the same loaders read it)::

    out/
      synth.json                                   manifest: spec, counts, version (re-run = no-op)
      20bn-something-something-v2/<id>.webm        SSv2 videos (or .mp4 with ext=".mp4")
      annotations/
        something-something-v2-labels.json         {"Moving something up": "2", ...}
        something-something-v2-train.json          [{"id", "label", "template", "placeholders"}, ...]
        something-something-v2-validation.json
        something-something-v2-test.json           [{"id"}, ...]
        bounding_box_smthsmth_part1.json           Something-Else boxes: {id: [per frame {"name", "labels"}, ...]}
        bounding_box_smthsmth_part2.json
      dataset_splits/compositional/                Something-Else compositional split
        train.json, validation.json, labels.json   (train and validation see disjoint shape groups per class)
      captions.json                                MSR-VTT style: {"videos": [...], "sentences": [...]}
      UCF-101/<Class>/v_<Class>_gNN_cMM.avi        UCF101 layout (train+val videos)
      ucfTrainTestlist/classInd.txt, trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt
      folder/<class_name>/<id>.mp4                 plain class-folder layout (train+val videos)

Boxes are exact: they are the bounding boxes (pixel edges, ``x2``/``y2`` exclusive) of the
pixels each entity covers in the rendered frame before noise; an entity with no visible pixel
(hand off-screen, object inside the box) is left out of that frame, as in Something-Else.

The package, in the order the data flows::

    spec.py      SynthSpec (what to generate), the classes, colours and shapes, SynthInfo
    scenes.py    one function per scene kind (SCENES): per-frame hand / object / container state
    render.py    a scene and a look → uint8 frames, exact boxes, caption (render_video)
    layouts.py   one video encoded into every layout; each layout's annotation files
    writer.py    generate(out, spec): plans, worker processes, manifest (re-run = no-op)
    loader.py    the registered "synthetic" dataset loader (read through the SSv2 loader)
"""

from vidrec.data.synthetic.loader import load_synthetic
from vidrec.data.synthetic.render import CONTAINER, HAND, OBJ, Look, render_scene, render_video, sample_look
from vidrec.data.synthetic.scenes import SCENES, Scene, make_scene
from vidrec.data.synthetic.spec import (
    CLASSES,
    LAYOUTS,
    MANIFEST,
    VERSION,
    ClassDef,
    SynthInfo,
    SynthSpec,
    camel_name,
    snake_name,
    template_to_class,
)
from vidrec.data.synthetic.writer import generate

__all__ = [
    "CLASSES",
    "CONTAINER",
    "HAND",
    "LAYOUTS",
    "MANIFEST",
    "OBJ",
    "SCENES",
    "VERSION",
    "ClassDef",
    "Look",
    "Scene",
    "SynthInfo",
    "SynthSpec",
    "camel_name",
    "generate",
    "load_synthetic",
    "make_scene",
    "render_scene",
    "render_video",
    "sample_look",
    "snake_name",
    "template_to_class",
]
