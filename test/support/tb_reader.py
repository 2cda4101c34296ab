"""Independent reader of TensorBoard event files, for the tests (not the package's writer).

Reads every events.out.tfevents.* under the folder given, checks the TFRecord framing (uint64 length, masked
CRC32C of the length, payload, masked CRC32C of the payload; CRC32C computed here bit by bit), parses each payload
with Debian's python3-protobuf as tensorflow.Event, declared below from the public field numbers of
tensorflow/core/util/event.proto, tensorflow/core/framework/summary.proto and
tensorboard/plugins/hparams/plugin_data.proto + api.proto, and prints JSON:
{"file_version", "scalars": {tag: [[step, value]]}, "images": {tag: [[step, width, height, png]]},
 "hparams": {name: value}, "plugins": [names]}.
"""
import json
import os
import struct
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def build():
    fd = descriptor_pb2.FileDescriptorProto(name="tb_reader.proto", package="rd", syntax="proto3")

    def msg(name, fields, parent=None):
        m = (parent.nested_type if parent is not None else fd.message_type).add(name=name)
        for fname, num, ftype, extra in fields:
            f = m.field.add(name=fname, number=num, type=ftype, label=F.LABEL_REPEATED if extra.get("rep") else F.LABEL_OPTIONAL)
            if "tn" in extra:
                f.type_name = extra["tn"]
        return m

    msg("PluginData", [("plugin_name", 1, F.TYPE_STRING, {}), ("content", 2, F.TYPE_BYTES, {})])
    msg("SummaryMetadata", [("plugin_data", 1, F.TYPE_MESSAGE, {"tn": ".rd.PluginData"}), ("display_name", 2, F.TYPE_STRING, {})])
    msg("Image", [("height", 1, F.TYPE_INT32, {}), ("width", 2, F.TYPE_INT32, {}), ("colorspace", 3, F.TYPE_INT32, {}),
                  ("encoded_image_string", 4, F.TYPE_BYTES, {})])
    msg("Value", [("tag", 1, F.TYPE_STRING, {}), ("simple_value", 2, F.TYPE_FLOAT, {}), ("image", 4, F.TYPE_MESSAGE, {"tn": ".rd.Image"}),
                  ("metadata", 9, F.TYPE_MESSAGE, {"tn": ".rd.SummaryMetadata"})])
    msg("Summary", [("value", 1, F.TYPE_MESSAGE, {"rep": 1, "tn": ".rd.Value"})])
    msg("Event", [("wall_time", 1, F.TYPE_DOUBLE, {}), ("step", 2, F.TYPE_INT64, {}), ("file_version", 3, F.TYPE_STRING, {}),
                  ("summary", 5, F.TYPE_MESSAGE, {"tn": ".rd.Summary"})])
    pb = msg("PbValue", [("number_value", 2, F.TYPE_DOUBLE, {}), ("string_value", 3, F.TYPE_STRING, {}), ("bool_value", 4, F.TYPE_BOOL, {})])
    pb.oneof_decl.add(name="kind")  # google.protobuf.Value's oneof
    for f in pb.field:
        f.oneof_index = 0
    entry = msg("SessionStartInfo", [("hparams", 1, F.TYPE_MESSAGE, {"rep": 1, "tn": ".rd.SessionStartInfo.HparamsEntry"}),
                                     ("start_time_secs", 5, F.TYPE_DOUBLE, {})])
    e = msg("HparamsEntry", [("key", 1, F.TYPE_STRING, {}), ("value", 2, F.TYPE_MESSAGE, {"tn": ".rd.PbValue"})], parent=entry)
    e.options.map_entry = True
    msg("HParamsPluginData", [("version", 1, F.TYPE_INT32, {}), ("session_start_info", 3, F.TYPE_MESSAGE, {"tn": ".rd.SessionStartInfo"})])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    factory = message_factory.MessageFactory(pool)
    get = lambda n: factory.GetPrototype(pool.FindMessageTypeByName("rd." + n))
    return get("Event"), get("HParamsPluginData")


def records(path):
    with open(path, "rb") as f:
        data = f.read()
    i = 0
    while i < len(data):
        head = data[i:i + 8]
        (n,) = struct.unpack("<Q", head)
        (hc,) = struct.unpack("<I", data[i + 8:i + 12])
        if hc != masked(head):
            raise SystemExit("%s: bad length CRC at %d" % (path, i))
        payload = data[i + 12:i + 12 + n]
        (pc,) = struct.unpack("<I", data[i + 12 + n:i + 16 + n])
        if pc != masked(payload):
            raise SystemExit("%s: bad payload CRC at %d" % (path, i))
        yield payload
        i += 16 + n


def main(folder):
    Event, HParams = build()
    out = {"file_version": None, "scalars": {}, "images": {}, "hparams": {}, "plugins": []}
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs if f.startswith("events.out.tfevents."))
    for path in files:
        for payload in records(path):
            ev = Event()
            ev.ParseFromString(payload)
            if ev.file_version:
                out["file_version"] = ev.file_version
            for v in ev.summary.value:
                if v.HasField("image"):
                    png = v.image.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"
                    out["images"].setdefault(v.tag, []).append([ev.step, v.image.width, v.image.height, png])
                elif v.metadata.plugin_data.plugin_name:
                    out["plugins"].append(v.metadata.plugin_data.plugin_name)
                    if v.tag == "_hparams_/session_start_info":
                        hp = HParams()
                        hp.ParseFromString(v.metadata.plugin_data.content)
                        for k, pv in hp.session_start_info.hparams.items():
                            out["hparams"][k] = getattr(pv, pv.WhichOneof("kind"))
                else:
                    out["scalars"].setdefault(v.tag, []).append([ev.step, v.simple_value])
    out["files"] = len(files)
    print(json.dumps(out))


main(sys.argv[1])
