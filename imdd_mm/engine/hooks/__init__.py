# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
from .frozen_sources_hook import FrozenSourcesHook
from .html_report_hook import HTMLReportHook
from .time_budget_hook import TimeBudgetHook

__all__ = ['HTMLReportHook', 'FrozenSourcesHook', 'TimeBudgetHook']
