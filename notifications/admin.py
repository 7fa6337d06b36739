from django.contrib import admin

from notifications.models import NotificationTemplate, Subscription


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    extra = 0
    fields = ["event", "recipient", "active"]


@admin.register(NotificationTemplate)
class NotificationTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "channel", "subject", "updated_at"]
    list_filter = ["channel"]
    search_fields = ["name", "subject", "body"]
    inlines = [SubscriptionInline]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["event", "template", "recipient", "active"]
    list_filter = ["event", "active", "template__channel"]
    list_select_related = ["template"]
    search_fields = ["event", "recipient"]
