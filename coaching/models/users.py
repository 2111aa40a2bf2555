import uuid
import zoneinfo

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone as dj_timezone


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone name (e.g. Asia/Taipei).")


def validate_country(value: str) -> None:
    if len(value) != 2 or not value.isalpha() or not value.isupper():
        raise ValidationError(f"{value!r} is not an ISO 3166-1 alpha-2 country code (e.g. TW).")


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email, password, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email, password=None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)

    def billable(self):
        """Users that billing analytics count: not staff, not test or internal accounts."""
        return self.filter(is_staff=False, is_superuser=False, is_test_account=False)


class User(AbstractBaseUser, PermissionsMixin):
    class Language(models.TextChoices):
        # Not chosen yet: pages follow the browser (Accept-Language); exports and e-mail use the site default.
        BROWSER = "", "Browser's language"
        ZH_HANT = "zh-hant", "繁體中文"
        EN = "en", "English"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=150, blank=True)
    plan = models.ForeignKey("coaching.Plan", on_delete=models.PROTECT, default="free", related_name="users")
    timezone = models.CharField(max_length=64, default=settings.DEFAULT_USER_TIME_ZONE, validators=[validate_timezone])
    country = models.CharField(max_length=2, default=settings.DEFAULT_COUNTRY, validators=[validate_country])
    language = models.CharField(
        max_length=8,
        choices=Language.choices,
        blank=True,
        default=Language.BROWSER,
        help_text="Chosen with the language switch on every page; also the language of exports and e-mail.",
    )
    date_joined = models.DateTimeField(default=dj_timezone.now, db_index=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    is_test_account = models.BooleanField(
        default=False, help_text="Test or internal account: billing analytics ignore it."
    )

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        ordering = ["email"]
        indexes = [
            # The few accounts billing analytics leave out (staff, superusers, test accounts): a
            # tiny partial index, so "not one of them" is a small hashed set, not a scan of all users.
            models.Index(
                fields=["id"],
                condition=models.Q(is_staff=True) | models.Q(is_superuser=True) | models.Q(is_test_account=True),
                name="user_not_billable",
            ),
        ]

    @property
    def preferred_language(self) -> str:
        """The language for what is made for this user away from a browser (exports, e-mail)."""
        return self.language or settings.LANGUAGE_CODE

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name or self.email

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        try:
            return zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return zoneinfo.ZoneInfo(settings.DEFAULT_USER_TIME_ZONE)
