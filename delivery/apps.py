from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"
    verbose_name = "Delivery pipeline"

    def ready(self) -> None:
        from delivery import partitions

        partitions.connect_signals()
