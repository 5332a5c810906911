"""The stock-pipeline policy pack: `pulumi preview --policy-pack policy` (the checks live in policies.py)."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy, StackValidationPolicy

from policies import RESOURCE_POLICIES, STACK_POLICIES

PolicyPack(
    name="stock-pipeline-security",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        *(
            ResourceValidationPolicy(name=name, description=description, validate=check)
            for name, (description, check) in RESOURCE_POLICIES.items()
        ),
        *(
            StackValidationPolicy(name=name, description=description, validate=check)
            for name, (description, check) in STACK_POLICIES.items()
        ),
    ],
)
