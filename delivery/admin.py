"""Admin for the configuration tables; pipeline records are read through the dashboard."""

from django.contrib import admin

from delivery.models import Destination, Mapping, Membership, Source, Workspace


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "workspace", "enabled", "created_at"]
    list_filter = ["workspace", "enabled"]
    readonly_fields = ["write_key"]


class MappingInline(admin.TabularInline):
    model = Mapping
    extra = 0


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    # credentials_encrypted is not editable, so the admin never shows secrets back.
    list_display = ["name", "workspace", "kind", "endpoint", "enabled"]
    list_filter = ["workspace", "kind", "enabled"]
    filter_horizontal = ["sources"]
    inlines = [MappingInline]


@admin.register(Mapping)
class MappingAdmin(admin.ModelAdmin):
    list_display = ["name", "destination", "enabled"]
    list_filter = ["enabled"]
