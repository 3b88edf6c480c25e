# Copyright (c) imdd-mm contributors. Licensed under the Apache License 2.0.
