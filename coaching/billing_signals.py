"""Keep the billing roll-up (``coaching.billing_rollups``) current when a payment or a user is saved or deleted.

Subscription writes go through ``coaching.billing_services``, which updates the roll-up itself;
``bulk_create`` writers (the demo world, ``seed_demo``) call ``billing_rollups.users_added``.
"""

from django.db.models.signals import post_save, pre_delete, pre_save
from django.dispatch import receiver

from . import billing_rollups
from .models import Payment, SubscriptionEvent, User


@receiver(pre_save, sender=Payment, dispatch_uid="billing_rollup_payment_pre_save")
def _payment_pre_save(sender, instance, **kwargs):
    billing_rollups.payment_pre_save(instance)


@receiver(post_save, sender=Payment, dispatch_uid="billing_rollup_payment_post_save")
def _payment_post_save(sender, instance, **kwargs):
    billing_rollups.payment_post_save(instance)


@receiver(pre_delete, sender=Payment, dispatch_uid="billing_rollup_payment_pre_delete")
def _payment_pre_delete(sender, instance, **kwargs):
    billing_rollups.payment_pre_delete(instance)


@receiver(pre_delete, sender=SubscriptionEvent, dispatch_uid="billing_rollup_event_pre_delete")
def _event_pre_delete(sender, instance, **kwargs):
    billing_rollups.event_pre_delete(instance)


@receiver(pre_save, sender=User, dispatch_uid="billing_rollup_user_pre_save")
def _user_pre_save(sender, instance, update_fields=None, **kwargs):
    billing_rollups.user_pre_save(instance, update_fields=update_fields)


@receiver(post_save, sender=User, dispatch_uid="billing_rollup_user_post_save")
def _user_post_save(sender, instance, created=False, **kwargs):
    billing_rollups.user_post_save(instance, created)


@receiver(pre_delete, sender=User, dispatch_uid="billing_rollup_user_pre_delete")
def _user_pre_delete(sender, instance, **kwargs):
    billing_rollups.user_pre_delete(instance)
