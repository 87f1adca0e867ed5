"""wa_id_keys: one key for the forms WhatsApp's wa_id gives one account, for a column."""

from __future__ import annotations

import pandas as pd
import pytest

from kwa_batch.validation.phones import wa_id_forms, wa_id_keys


@pytest.mark.parametrize(
    "number",
    ["+5215512345678", "+525512345678", "+5511987654321", "+551187654321", "+919876543210",
     "+12025550143", "+5511312345678"],
)  # fmt: skip
def test_every_form_of_a_number_has_the_number_s_key(number: str) -> None:
    forms = pd.Series(list(wa_id_forms(number)), dtype="str")
    assert wa_id_keys(forms).nunique() == 1


def test_different_accounts_keep_different_keys_and_na_stays_na() -> None:
    keys = wa_id_keys(pd.Series(["+5215512345678", "+5215512345679", None], dtype="str"))
    assert keys.iloc[0] != keys.iloc[1]
    assert pd.isna(keys.iloc[2])
