"""Pure rules shared by `storage` and `oauth`: functions of their arguments only,
with no database, no Flask request and no Authlib. They sit below `storage` so that
both layers can use them without `storage` importing `oauth`."""
