"""`falconet artifact ...`: falcoctl's artifact commands plus installed/uninstall/mirror."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.options import (
    AllowedTypes,
    AssetsDir,
    CaFile,
    EngineVersions,
    Insecure,
    NoVerify,
    Output,
    PlainHttp,
    Platform,
    PluginsDir,
    RequireSignature,
    RulesfilesDir,
    StateDir,
    Strength,
)

TypeFilter = Annotated[str | None, typer.Option("--type", help="rulesfile|plugin|asset")]


def register(root: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    group = groups["artifact"]
    group.command("install")(install)
    group.command("installed")(installed)
    group.command("uninstall")(uninstall)
    group.command("search")(search)
    group.command("list")(list_entries)
    group.command("ls", hidden=True)(list_entries)
    group.command("info")(info)
    group.command("config")(config)
    group.command("manifest")(manifest)
    group.command("mirror")(mirror)


def _context(
    plain_http: bool = False,
    ca_file: str | None = None,
    insecure: bool = False,
    flags: dict[str, Any] | None = None,
) -> Any:
    from cli.context import ENV
    from feeds.context import FeedsContext, TransportFlags

    transport = TransportFlags(
        plain_http=plain_http, ca_file=ca_file, insecure_skip_tls_verify=insecure
    )
    return FeedsContext.load(ENV.config_path, flags, transport)


def install(
    refs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Index names (falco-rules:5), full refs or oci-layout: refs. "
            "Default: artifact.install.refs."
        ),
    ] = None,
    rulesfiles_dir: RulesfilesDir = None,
    plugins_dir: PluginsDir = None,
    assets_dir: AssetsDir = None,
    state_dir: StateDir = None,
    allowed_types: AllowedTypes = None,
    platform: Platform = None,
    no_verify: NoVerify = False,
    require_signature: RequireSignature = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan; write nothing.")
    ] = False,
    compliance: Annotated[
        list[str] | None,
        typer.Option(
            "--compliance",
            help="Enable only rules covering a framework[:control prefix], "
            "e.g. pci-dss:10.2 (repeatable).",
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="Enable only rules with this tag (repeatable)."),
    ] = None,
    maturity: Annotated[
        str | None,
        typer.Option(
            "--maturity", help="stable|incubating|sandbox: enable rules at least this mature."
        ),
    ] = None,
    min_priority: Annotated[
        str | None,
        typer.Option("--min-priority", help="Enable only rules of this priority or higher."),
    ] = None,
    strength: Strength = None,
    engine_versions: EngineVersions = None,
    allow_downgrade: Annotated[
        bool, typer.Option("--allow-downgrade", help="Accept replacing an installed newer version.")
    ] = False,
    pre: Annotated[bool, typer.Option("--pre", help="Allow pre-release versions.")] = False,
    resolve_deps: Annotated[
        bool | None,
        typer.Option(
            "--resolve-deps/--no-resolve-deps",
            help="Install dependencies too (default: artifact.install.resolve_deps, true).",
        ),
    ] = None,
    locked: Annotated[
        bool,
        typer.Option(
            "--locked", help="Install exactly the digests of the lock file; resolve nothing."
        ),
    ] = False,
    update: Annotated[
        list[str] | None,
        typer.Option("--update", help="Re-resolve this locked artifact (repeatable)."),
    ] = None,
    lock: Annotated[
        str | None,
        typer.Option("--lock", help="Lock file (default: falconet.lock in the state directory)."),
    ] = None,
    plain_http: PlainHttp = False,
    ca_file: CaFile = None,
    insecure: Insecure = False,
    output: Output = "text",
) -> None:
    """Install artifacts: every file is fetched, checked and staged before any is replaced.

    With --compliance/--tag/--maturity/--min-priority, also writes a compliance overlay and a
    selection (a Falco config.d fragment) next to the rules, so falconet and Falco enable only
    the selected rules."""
    from pathlib import Path

    from cli.progress import transfer_progress
    from cli.render import emit_json, emit_text, table
    from feeds.install import ResolveOptions, Selection, install_dirs_from
    from feeds.install import install as run_install

    types = [t for item in allowed_types or [] for t in item.split(",") if t]
    context = _context(plain_http, ca_file, insecure, {"artifact.install.state_dir": state_dir})
    dirs = install_dirs_from(context, rulesfiles_dir, plugins_dir, assets_dir)
    resolve = ResolveOptions(
        engine_versions=engine_versions,
        allow_downgrade=allow_downgrade,
        pre=pre,
        update=tuple(update or ()),
        locked=locked,
        resolve_deps=resolve_deps,
        lock_path=Path(lock) if lock else None,
    )
    with transfer_progress() as progress:
        report = run_install(
            context,
            list(refs or []),
            dirs,
            allowed_types=types,
            platform=platform,
            dry_run=dry_run,
            no_verify=no_verify,
            require_signature=require_signature,
            selection=Selection(
                tuple(compliance or ()), tuple(tag or ()), maturity, min_priority, strength
            ),
            resolve=resolve,
            progress=progress,
        )
    if output == "json":
        emit_json(report.to_json())
        return
    headers = ["artifact", "version", "digest", "action", "signature", "reason", "files"]
    rows = [
        (
            a.name,
            a.version,
            a.digest[:19],
            a.action,
            a.verification.get("verdict", ""),
            a.reason,
            ", ".join(a.files),
        )
        for a in report.artifacts
    ]
    emit_text(table(headers, rows))
    if report.selection:
        emit_text(
            f"selection: {report.selection['selected_rules']} rules enabled "
            f"({report.selection['selection_file']}; overlay {report.selection['overlay']})"
        )
    if dry_run:
        emit_text("dry run: nothing was written")


def installed(output: Output = "text", state_dir: StateDir = None) -> None:
    """What is installed, from the state records: ref, version, digest, files, time."""
    from cli.render import emit_json, emit_text, table
    from feeds.install import installed as list_installed

    records = list_installed(_context(flags={"artifact.install.state_dir": state_dir}))
    if output == "json":
        emit_json([r.to_dict() for r in records])
        return
    emit_text(
        table(
            ["artifact", "type", "version", "digest", "ref", "installed", "files"],
            [
                (
                    r.name,
                    r.type,
                    r.version,
                    r.digest[:19],
                    r.ref,
                    r.installed_at,
                    ", ".join(f.path for f in r.files),
                )
                for r in records
            ],
        )
    )


def uninstall(
    name: Annotated[str, typer.Argument(help="Artifact name (see `artifact installed`).")],
    state_dir: StateDir = None,
) -> None:
    """Remove an installed artifact's files and its state record."""
    from cli.render import emit_text
    from feeds.install import uninstall as run_uninstall

    record = run_uninstall(_context(flags={"artifact.install.state_dir": state_dir}), name)
    emit_text(f"uninstalled {record.name} {record.version} ({len(record.files)} files)")


def _entry_rows(entries: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "index": e.index,
            "name": e.name,
            "type": e.type,
            "registry": e.registry,
            "repository": e.repository,
            "description": e.description,
            "compliance": list(e.compliance),
        }
        for e in entries
    ]


def _render_entries(entries: list[Any], output: str) -> None:
    from cli.render import emit_json, emit_text, table

    rows = _entry_rows(entries)
    if output == "json":
        emit_json(rows)
        return
    emit_text(
        table(
            ["index", "artifact", "type", "registry", "repository"],
            [(r["index"], r["name"], r["type"], r["registry"], r["repository"]) for r in rows],
        )
    )


def search(
    keywords: Annotated[list[str], typer.Argument(help="Words to look for.")],
    artifact_type: TypeFilter = None,
    min_score: Annotated[float, typer.Option("--min-score", help="Name similarity (0,1].")] = 0.65,
    compliance: Annotated[
        str | None,
        typer.Option("--compliance", help="Only entries covering this framework (e.g. hipaa)."),
    ] = None,
    output: Output = "text",
) -> None:
    """Search the indexes by name similarity and keywords (falcoctl's algorithm)."""
    if not 0 < min_score <= 1:
        raise typer.BadParameter("must be in (0, 1]", param_hint="--min-score")
    found = _context().indexes.search(keywords, min_score, artifact_type, compliance)
    _render_entries(found, output)


def list_entries(
    artifact_type: TypeFilter = None,
    index: Annotated[str | None, typer.Option("--index", help="Only this index.")] = None,
    output: Output = "text",
) -> None:
    """List every artifact of the configured indexes."""
    entries = [
        e
        for e in _context().indexes.entries()
        if (not artifact_type or e.type == artifact_type) and (not index or e.index == index)
    ]
    _render_entries(entries, output)


def info(
    refs: Annotated[list[str], typer.Argument(help="Index names or full refs.")],
    plain_http: PlainHttp = False,
    ca_file: CaFile = None,
    insecure: Insecure = False,
    output: Output = "text",
) -> None:
    """The tags of each artifact's repository, newest version first (.sig tags hidden)."""
    from cli.render import emit_json, emit_text, table
    from feeds.inspect import artifact_info

    context = _context(plain_http, ca_file, insecure)
    infos = [artifact_info(context, ref) for ref in refs]
    if output == "json":
        emit_json([i.to_json() for i in infos])
        return
    emit_text(
        table(["ref", "repository", "tags"], [(i.ref, i.locator, ", ".join(i.tags)) for i in infos])
    )


def config(
    ref: Annotated[str, typer.Argument(help="Index name or full ref.")],
    platform: Platform = None,
    plain_http: PlainHttp = False,
    ca_file: CaFile = None,
    insecure: Insecure = False,
) -> None:
    """Print the artifact's config layer (name, version, dependencies, requirements)."""
    from cli.render import emit_json
    from feeds.inspect import artifact_config

    emit_json(artifact_config(_context(plain_http, ca_file, insecure), ref, platform))


def manifest(
    ref: Annotated[str, typer.Argument(help="Index name or full ref.")],
    platform: Platform = None,
    plain_http: PlainHttp = False,
    ca_file: CaFile = None,
    insecure: Insecure = False,
) -> None:
    """Print the artifact's (platform) manifest."""
    from cli.render import emit_json
    from feeds.inspect import artifact_manifest

    emit_json(artifact_manifest(_context(plain_http, ca_file, insecure), ref, platform))


def mirror(
    source: Annotated[str, typer.Argument(help="Index name, full ref or oci-layout: ref.")],
    destination: Annotated[
        str, typer.Argument(help="host/repository[:tag] or oci-layout:/dir[:tag]")
    ],
    all_tags: Annotated[bool, typer.Option("--all-tags", help="Copy every tag.")] = False,
    index_file: Annotated[
        str | None,
        typer.Option(
            "--write-index", help="Add an entry for the copy to this index.yaml (air gap)."
        ),
    ] = None,
    no_verify: NoVerify = False,
    require_signature: RequireSignature = False,
    plain_http: PlainHttp = False,
    ca_file: CaFile = None,
    insecure: Insecure = False,
    output: Output = "text",
) -> None:
    """Copy artifacts with their .sig signatures between registries and OCI layouts."""
    from pathlib import Path

    from cli.render import emit_json, emit_text
    from feeds.mirror import mirror_artifact

    report = mirror_artifact(
        _context(plain_http, ca_file, insecure),
        source,
        destination,
        all_tags=all_tags,
        no_verify=no_verify,
        require_signature=require_signature,
        index_file=Path(index_file) if index_file else None,
    )
    if output == "json":
        emit_json(report.to_json())
        return
    for item in report.tags:
        emit_text(f"{item['tag']}  {item['digest']}")
    emit_text(
        f"mirrored {report.source} -> {report.destination}: {len(report.tags)} tags, "
        f"{len(report.signatures)} signatures, {report.blobs_copied} blobs copied, "
        f"{report.blobs_present} already there"
    )
    if report.index_file:
        emit_text(f"index entry written to {report.index_file}")
