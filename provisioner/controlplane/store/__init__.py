"""The only code that talks to etcd: typed get/list/CAS/delete/watch over JSON values."""
