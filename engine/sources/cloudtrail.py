"""The `aws_cloudtrail` source: CloudTrail records with the cloudtrail plugin's `ct.*`, `s3.*`,
`ec2.*`, `ecr.*`, `iam.*` fields (plugins/cloudtrail/pkg/cloudtrail/extract.go), plus `json.*`
and the generic `evt.*`. String fields read JSON strings only (anything else reads as ""), as
fastjson's GetStringBytes does; integers are the s3 byte counts and op counters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.fields import Extractor, FieldCatalog, FieldSpec, register_source
from engine.sources import provide_plugin
from engine.sources.formats import InputFormatError, RecordFormat, register_format, rfc3339_at
from engine.sources.json_event import (
    JsonEvent,
    add_shared,
    index_argument,
    on_object,
)
from engine.sources.json_source import plugin_catalog
from engine.sources.jsonpath import MISSING, getter, string_or_empty, to_json_text

SOURCE = "aws_cloudtrail"
PLUGIN = "cloudtrail"
PLUGIN_VERSION = "0.17.1"
AMAZONAWS = ".amazonaws.com"

Data = dict[str, Any]


def _string_at(*keys: str) -> Callable[[Data], str | None]:
    get = getter(*keys)

    def extract(data: Data) -> str | None:
        value = get(data)
        return None if value is MISSING else string_or_empty(value)

    return extract


def _json_at(*keys: str) -> Callable[[Data], str | None]:
    get = getter(*keys)

    def extract(data: Data) -> str | None:
        value = get(data)
        return None if value is MISSING else to_json_text(value)

    return extract


def _bool_at(*keys: str) -> Callable[[Data], str | None]:
    get = getter(*keys)

    def extract(data: Data) -> str | None:
        value = get(data)
        return None if value is MISSING else ("true" if value is True else "false")

    return extract


_user_type = getter("userIdentity", "type")
_user_name = getter("userIdentity", "userName")
_invoked_by = getter("userIdentity", "invokedBy")
_issuer_name = getter("userIdentity", "sessionContext", "sessionIssuer", "userName")
_user_arn = getter("userIdentity", "arn")
_principal_id = getter("userIdentity", "principalId")
_account_id = getter("userIdentity", "accountId")


def user(data: Data) -> str | None:
    """ct.user: the user name; for AssumedRole the role (session issuer) name."""
    kind = _user_type(data)
    if type(kind) is not str:
        return None
    if kind in ("Root", "IAMUser"):
        value = _user_name(data)
    elif kind == "AWSService":
        value = _invoked_by(data)
    elif kind == "AssumedRole":
        issuer = _issuer_name(data)
        return "AssumedRole" if issuer is MISSING else string_or_empty(issuer)
    elif kind in ("AWSAccount", "FederatedUser"):
        return kind
    else:
        return None
    return None if value is MISSING else string_or_empty(value)


def original_user(data: Data) -> str | None:
    """ct.originaluser: for AssumedRole the session name (from the ARN or the principal id)."""
    if _user_type(data) != "AssumedRole":
        value = _user_name(data)
        return None if value is MISSING else string_or_empty(value)
    arn = _user_arn(data)
    if arn is not MISSING:
        parts = string_or_empty(arn).split("/")
        if len(parts) == 3:
            return parts[-1]
    principal = _principal_id(data)
    if principal is not MISSING:
        parts = string_or_empty(principal).split(":")
        if len(parts) == 2:
            return parts[1]
    return None


def short_source(data: Data) -> str | None:
    source = data.get("eventSource", MISSING)
    if source is MISSING:
        return None
    text = string_or_empty(source)
    if len(text) > len(AMAZONAWS) and text.endswith(AMAZONAWS):
        return text[: -len(AMAZONAWS)]
    return None  # upstream extracts nothing when the trailer is absent


def account_id(data: Data) -> str | None:
    value = _account_id(data)
    if value is MISSING:
        value = data.get("recipientAccountId", MISSING)
    return None if value is MISSING else string_or_empty(value)


# Event names that modify state, for records without readOnly (the plugin's heuristic).
_WRITE_PREFIXES = (
    "Start", "Stop", "Create", "Destroy", "Delete", "Add", "Remove", "Terminate", "Put",
    "Associate", "Disassociate", "Attach", "Detach", "Open", "Close", "Wipe", "Update", "Upgrade",
    "Unlink", "Assign", "Unassign", "Suspend", "Set", "Run", "Register", "Deregister", "Reboot",
    "Purchase", "Modify", "Initialize", "Enable", "Disable", "Cancel", "Admin", "Activate",
)  # fmt: skip


def read_only(data: Data) -> str | None:
    # Upstream returns nothing without readOnly (its heuristic is unreachable); kept so.
    value = data.get("readOnly", MISSING)
    if value is MISSING:
        return None
    return "true" if value is True else "false"


def resources(data: Data) -> str | None:
    value = data.get("resources", MISSING)
    if type(value) is not list or not value:
        return None
    return ",".join(to_json_text(item) for item in value) or None


_bucket = getter("requestParameters", "bucketName")
_key = getter("requestParameters", "key")


def s3_uri(data: Data) -> str | None:
    bucket, key = _bucket(data), _key(data)
    if type(bucket) is not str or type(key) is not str:
        return None
    return f"s3://{bucket}/{key}"


def ec2_name(data: Data) -> str | None:
    items = getter("requestParameters", "tagSpecificationSet", "items")(data)
    if type(items) is not list:
        return None
    name = ""
    for item in items:
        if type(item) is not dict or item.get("resourceType") != "instance":
            continue
        for tag in item.get("tags") or ():
            if type(tag) is dict and tag.get("key") == "Name":
                name = string_or_empty(tag.get("value"))
                break
    return name or None


_instances = getter("responseElements", "instancesSet", "items")
_SCALAR_IMAGE_PATHS = (
    getter("requestParameters", "imageId"),
    getter("requestParameters", "DescribeFastLaunchImagesRequest", "ImageId", "content"),
    getter("requestParameters", "launchSpecification", "imageId"),
)


def image_ids(data: Data, index: int | None) -> tuple[str, ...] | None:
    items = _instances(data)
    if items is not MISSING:
        listed = items if type(items) is list else []
        if index is None:
            found = [string_or_empty(i.get("imageId")) for i in listed if type(i) is dict]
            found = [image for image in found if image]
            return tuple(found) or None
        if (
            index >= len(listed)
            or type(listed[index]) is not dict
            or "imageId" not in listed[index]
        ):
            return None
        return (string_or_empty(listed[index]["imageId"]),)
    if index not in (None, 0):
        return None
    for get in _SCALAR_IMAGE_PATHS:
        value = get(data)
        if value is not MISSING:
            return (string_or_empty(value),)
    return None


def _as_u64(value: Any) -> int:
    # Byte counts are sometimes floats ("bytesTransferredOut": 33.0).
    if type(value) is int and value >= 0:
        return value
    if type(value) is float and value >= 0:
        return int(value)
    return 0


_bytes_in = getter("additionalEventData", "bytesTransferredIn")
_bytes_out = getter("additionalEventData", "bytesTransferredOut")


def s3_bytes(data: Data) -> int | None:
    values = [v for v in (_bytes_in(data), _bytes_out(data)) if v is not MISSING]
    return sum(map(_as_u64, values)) if values else None


def _one_bytes(get: Callable[[Any], Any]) -> Callable[[Data], int | None]:
    return lambda data: None if (value := get(data)) is MISSING else _as_u64(value)


def _op_count(match: Callable[[Any], bool]) -> Callable[[Data], int | None]:
    return lambda data: 1 if match(data.get("eventName")) else None


# The first of these present ends ct.info.
_INFO_DETAILS: tuple[tuple[str, Callable[[Data], str | None]], ...] = (
    ("URI", s3_uri),
    ("Bucket", _string_at("requestParameters", "bucketName")),
    ("Key", _string_at("requestParameters", "key")),
    ("Host", _string_at("requestParameters", "Host")),
)


def event_info(data: Data) -> str:
    """ct.info: "who via where [!][←|→] what" plus the S3 details, as the plugin writes it."""
    who, where, what = (
        user(data),
        _string_at("sourceIPAddress")(data),
        _string_at("eventName")(data),
    )
    if who is None:
        return "<invalid cloudtrail event: userIdentity field missing>"
    if where is None:
        return "<invalid cloudtrail event: eventSource field missing>"
    if what is None:
        return "<invalid cloudtrail event: eventName field missing>"
    error = "!" if "errorCode" in data else ""
    direction = "→" if read_only(data) == "false" else "←"
    head = f"{who}" if who == where else f"{who} via {where}"
    info = f"{head} {error}{direction} {what}"
    if what == "PutBucketPublicAccessBlock":
        if type(getter("requestParameters", "PublicAccessBlockConfiguration")(data)) is dict:
            # Upstream reads these flags from the record's top level, so they print false.
            info += (
                " BlockPublicAcls=false BlockPublicPolicy=false IgnorePublicAcls=false"
                " RestrictPublicBuckets=false "
            )
        return info
    size = s3_bytes(data)
    if size is not None:
        info += f" Size={size}"
    for label, extract in _INFO_DETAILS:
        value = extract(data)
        if value is not None:
            return f"{info} {label}={value}"
    return info


def plugin_info(event: JsonEvent) -> str:
    """The plugin's String(): "<region> <user> <shortsrc> <name> <info>"."""
    data = event.data if type(event.data) is dict else {}
    source = string_or_empty(data.get("eventSource"))
    if len(source) > len(AMAZONAWS) and source.endswith(AMAZONAWS):
        source = source[: -len(AMAZONAWS)]
    who = user(data)
    who = f" {who}" if who else ""
    region, name = string_or_empty(data.get("awsRegion")), string_or_empty(data.get("eventName"))
    return f"{region}{who} {source} {name} {event_info(data)}"


_REQUEST_FIELDS = (
    ("availabilityzone", "availabilityZone", "the availability zone included in the request."),
    ("cluster", "cluster", "the cluster included in the request."),
    ("functionname", "functionName", "the function name included in the request."),
    ("groupname", "groupName", "the group name included in the request."),
    ("host", "Host", "the host included in the request"),
    ("name", "name", "the name of the entity being acted on in the request."),
    ("policy", "policy", "the policy included in the request"),
    ("reason", "reason", "the reason included in the request."),
    ("target", "target", "the target included in the request."),
    # Upstream's extractor tests "documentName" against this lowercase name and never matches;
    # we extract it as documented.
    ("documentname", "documentName", "the document name included in the request."),
    ("serialnumber", "serialNumber", "the serial number provided in the request."),
    ("servicename", "serviceName", "the service name provided in the request."),
    ("subnetid", "subnetId", "the subnet ID provided in the request."),
    ("taskdefinition", "taskDefinition", "the task definition provided in the request."),
    ("username", "userName", "the username provided in the request."),
)

# (name, description, extractor over the record)
_STRING_FIELDS: tuple[tuple[str, str, Callable[[Data], str | None]], ...] = (
    (
        "ct.id",
        "the unique ID of the cloudtrail event (eventID in the json).",
        _string_at("eventID"),
    ),
    (
        "ct.error",
        "The error code from the event; absent if there was no error.",
        _string_at("errorCode"),
    ),
    (
        "ct.errormessage",
        "The description of an error; absent if there was no error.",
        _string_at("errorMessage"),
    ),
    (
        "ct.time",
        "the timestamp of the cloudtrail event (eventTime in the json).",
        _string_at("eventTime"),
    ),
    (
        "ct.src",
        "the source of the cloudtrail event (eventSource in the json).",
        _string_at("eventSource"),
    ),
    ("ct.shortsrc", "eventSource without the '.amazonaws.com' trailer.", short_source),
    (
        "ct.name",
        "the name of the cloudtrail event (eventName in the json).",
        _string_at("eventName"),
    ),
    ("ct.user", "the user (userIdentity.userName; the role name for AssumedRole).", user),
    (
        "ct.originaluser",
        "the user name as seen in CloudTrail (session name for AssumedRole).",
        original_user,
    ),
    ("ct.user.accountid", "the account id of the user of the cloudtrail event.", account_id),
    (
        "ct.user.identitytype",
        "the kind of user identity (e.g. Root, IAMUser, AWSService).",
        _string_at("userIdentity", "type"),
    ),
    (
        "ct.user.principalid",
        "A unique identifier for the user that made the request.",
        _string_at("userIdentity", "principalId"),
    ),
    (
        "ct.user.arn",
        "the ARN of the user that made the request.",
        _string_at("userIdentity", "arn"),
    ),
    (
        "ct.region",
        "the region of the cloudtrail event (awsRegion in the json).",
        _string_at("awsRegion"),
    ),
    (
        "ct.response.subnetid",
        "the subnet ID included in the response.",
        _string_at("responseElements", "subnetId"),
    ),
    (
        "ct.response.reservationid",
        "the reservation ID included in the response.",
        _string_at("responseElements", "reservationId"),
    ),
    ("ct.response", "All response elements.", _json_at("responseElements")),
    *(
        (f"ct.request.{name}", desc, _string_at("requestParameters", key))
        for name, key, desc in _REQUEST_FIELDS
    ),
    ("ct.request", "All request parameters.", _json_at("requestParameters")),
    (
        "ct.srcip",
        "the IP address generating the event (sourceIPAddress in the json).",
        _string_at("sourceIPAddress"),
    ),
    (
        "ct.useragent",
        "the user agent generating the event (userAgent in the json).",
        _string_at("userAgent"),
    ),
    ("ct.info", "summary information about the event.", event_info),
    (
        "ct.managementevent",
        "'true' if the event is a management event, 'false' otherwise.",
        _bool_at("managementEvent"),
    ),
    (
        "ct.readonly",
        "'true' if the event only reads information, 'false' if it modifies state.",
        read_only,
    ),
    ("ct.requestid", "The value that identifies the request.", _string_at("requestID")),
    (
        "ct.eventtype",
        "Identifies the type of event that generated the event record.",
        _string_at("eventType"),
    ),
    (
        "ct.apiversion",
        "The API version associated with the AwsApiCall eventType value.",
        _string_at("apiVersion"),
    ),
    ("ct.resources", "A list of resources accessed in the event.", resources),
    (
        "ct.recipientaccountid",
        "The account ID that received this event.",
        _string_at("recipientAccountId"),
    ),
    (
        "ct.serviceeventdetails",
        "Identifies the service event, what triggered it and the result.",
        _string_at("serviceEventDetails"),
    ),
    (
        "ct.sharedeventid",
        "GUID generated by CloudTrail to uniquely identify CloudTrail events.",
        _string_at("sharedEventID"),
    ),
    (
        "ct.vpcendpointid",
        "Identifies the VPC endpoint in which requests were made.",
        _string_at("vpcEndpointId"),
    ),
    (
        "ct.eventcategory",
        "Shows the event category that is used in LookupEvents calls.",
        _string_at("eventCategory"),
    ),
    (
        "ct.addendum.reason",
        "The reason that the event or some of its contents were missing.",
        _string_at("addendum", "reason"),
    ),
    (
        "ct.addendum.updatedfields",
        "The event record fields that are updated by the addendum.",
        _string_at("addendum", "updatedFields"),
    ),
    (
        "ct.addendum.originalrequestid",
        "The original unique ID of the request.",
        _string_at("addendum", "originalRequestID"),
    ),
    (
        "ct.addendum.originaleventid",
        "The original event ID.",
        _string_at("addendum", "originalEventID"),
    ),
    (
        "ct.sessioncredentialfromconsole",
        "Whether the event originated from a console session.",
        _bool_at("sessionCredentialFromConsole"),
    ),
    (
        "ct.edgedevicedetails",
        "Information about edge devices that are targets of a request.",
        _string_at("edgeDeviceDetails"),
    ),
    (
        "ct.tlsdetails.tlsversion",
        "The TLS version of a request.",
        _string_at("tlsDetails", "tlsVersion"),
    ),
    (
        "ct.tlsdetails.ciphersuite",
        "The cipher suite of a request.",
        _string_at("tlsDetails", "cipherSuite"),
    ),
    (
        "ct.tlsdetails.clientprovidedhostheader",
        "The client-provided host name used in the call.",
        _string_at("tlsDetails", "clientProvidedHostHeader"),
    ),
    (
        "ct.additionaleventdata",
        "All additional event data attributes.",
        _json_at("additionalEventData"),
    ),
    ("s3.uri", "the s3 URI (s3://<bucket>/<key>).", s3_uri),
    ("s3.bucket", "the bucket name for s3 events.", _string_at("requestParameters", "bucketName")),
    ("s3.key", "the S3 key name.", _string_at("requestParameters", "key")),
    ("ec2.name", "the name of the ec2 instances, typically stored in the instance tags.", ec2_name),
    (
        "ec2.imageid",
        "(Deprecated) the image ID of the ec2 instance; use ec2.imageids[0].",
        lambda d: (image_ids(d, 0) or (None,))[0],
    ),
    (
        "ecr.repository",
        "the name of the ecr Repository specified in the request.",
        _string_at("requestParameters", "repositoryName"),
    ),
    (
        "ecr.imagetag",
        "the tag of the image specified in the request.",
        _string_at("requestParameters", "imageTag"),
    ),
    (
        "iam.role",
        "the IAM role specified in the request.",
        _string_at("requestParameters", "roleName"),
    ),
    (
        "iam.policy",
        "the IAM policy specified in the request.",
        _string_at("requestParameters", "policyName"),
    ),
)

_UINT_FIELDS: tuple[tuple[str, str, Callable[[Data], int | None]], ...] = (
    ("s3.bytes", "the size of an s3 download or upload, in bytes.", s3_bytes),
    ("s3.bytes.in", "the size of an s3 upload, in bytes.", _one_bytes(_bytes_in)),
    ("s3.bytes.out", "the size of an s3 download, in bytes.", _one_bytes(_bytes_out)),
    ("s3.cnt.get", "1 for GetObject events.", _op_count(lambda name: name == "GetObject")),
    ("s3.cnt.put", "1 for PutObject events.", _op_count(lambda name: name == "PutObject")),
    (
        "s3.cnt.other",
        "1 for events other than GetObject and PutObject.",
        _op_count(lambda name: name not in ("GetObject", "PutObject")),
    ),
)


def _image_ids_factory(arg: str | None) -> Extractor:
    index = index_argument(arg)
    return on_object(lambda data: image_ids(data, index))


def build_catalog() -> FieldCatalog:
    catalog = plugin_catalog(SOURCE, PLUGIN, _STRING_FIELDS, plugin_info)
    for name, desc, count in _UINT_FIELDS:
        catalog.add_simple(FieldSpec(name, "uint", desc), on_object(count))
    add_shared(
        catalog,
        FieldSpec(
            "ec2.imageids",
            "string",
            "the list of image IDs for the ec2 instances involved.",
            is_list=True,
            arg="optional",
        ),
        _image_ids_factory,
    )
    return catalog


def trail_records(document: Any) -> list[Any]:
    """The records of a CloudTrail log file: {"Records": [...]}."""
    records = document.get("Records") if isinstance(document, dict) else None
    if not isinstance(records, list):
        raise InputFormatError(
            'not a CloudTrail log file (no "Records" array)',
            hint='CloudTrail files hold {"Records": [...]}, plain or gzipped',
        )
    return records


register_source(SOURCE, build_catalog)
# Records without a valid eventTime are skipped, as the plugin does.
register_format(RecordFormat(SOURCE, trail_records, rfc3339_at("eventTime")))
provide_plugin(PLUGIN, PLUGIN_VERSION)
