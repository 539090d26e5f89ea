from django.apps import AppConfig


class OverviewConfig(AppConfig):
    name = "overview"
    verbose_name = "Delivery Overview"

    def ready(self) -> None:
        from overview import changes

        changes.register()
