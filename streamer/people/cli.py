"""``streamer people``: the face library from the command line (the database the config's
[store] names; a running service picks the changes up within ``people.refresh_s``).

    streamer people add NAME PHOTO...   enroll each photo's one face (a photo with none or several
                                        is skipped and said; exit 1 if none was enrolled)
    streamer people list
    streamer people remove NAME [--face ID]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("people", help="the face library: add NAME PHOTO..., list, remove NAME")
    p.add_argument("--config", default=None, help="config.toml ([store], [pipeline] detector)")
    ps = p.add_subparsers(dest="people_command", required=True)
    a = ps.add_parser("add", help="enroll photos of one person (JPEG or PNG, one face each)")
    a.add_argument("name")
    a.add_argument("photos", nargs="+")
    ps.add_parser("list", help="people and their enrolled faces")
    r = ps.add_parser("remove", help="remove a person, or one of their faces")
    r.add_argument("name")
    r.add_argument("--face", type=int, default=None, help="only this face id")


def cmd_people(args: argparse.Namespace) -> int:
    from streamer.config import load_config
    from streamer.history.schema import Database
    from streamer.people.library import Library, check_name, jpeg

    config = load_config(args.config, {}, shipped_models=True)
    if not config.store.enabled:
        print("streamer people: the event store is off (store.enabled)", file=sys.stderr)
        return 2
    db = Database(config.store.url, config.store.dir)
    conn = db.connect()
    db.migrate(conn)
    lib = Library(db)
    if args.people_command == "list":
        for p in lib.people(conn):
            faces = ", ".join(f"{f['id']} ({f['source']})" for f in p["faces"]) or "-"
            neg = f"; not them: {len(p['negatives'])}" if p["negatives"] else ""
            print(f"{p['name']}: {len(p['faces'])} faces: {faces}{neg}")
        return 0
    if args.people_command == "remove":
        ok = (
            lib.remove_face(conn, args.name, args.face)
            if args.face is not None
            else lib.remove_person(conn, args.name)
        )
        if not ok:
            what = f"face {args.face} of {args.name}" if args.face is not None else args.name
            print(f"streamer people: no such person or face: {what}", file=sys.stderr)
            return 1
        print("removed")
        return 0
    try:
        name = check_name(args.name)
    except ValueError as e:
        print(f"streamer people: {e}", file=sys.stderr)
        return 2
    from streamer.people.faces import ENROL_MIRRORED, BadPhoto, FaceFinder, decode_photo

    finder = FaceFinder.from_config(config)
    added = 0
    for photo in args.photos:
        try:
            photo_rgb = decode_photo(Path(photo).read_bytes(), config.people.max_upload_pixels)
            got = finder.one_face(photo_rgb, mirrored=ENROL_MIRRORED)
        except (BadPhoto, OSError) as e:
            why = e.strerror.lower() if isinstance(e, OSError) and e.strerror else str(e)
            print(f"{photo}: skipped: {why}", file=sys.stderr)
            continue
        (fid,) = lib.add_faces(conn, name, [(got.descriptor, jpeg(got.crop))], "file")
        b = got.box
        print(f"{photo}: enrolled as {name} (face {fid}, box {b.left},{b.top},{b.right},{b.bottom})")
        added += 1
    return 0 if added else 1
