# Everything from a fresh Debian 12 machine (as root): `make up` starts a cluster, `make test` runs the suite.
# Install steps leave stamp files under .state/ and are skipped while their inputs are unchanged.

SHELL := /bin/sh
PYTHON ?= python3
VENV := .venv
STAMPS := .state

# Every Debian package the project and its tests need, in one place.
APT_PACKAGES := python3 python3-venv python3-pip ca-certificates curl gnupg \
	etcd-server etcd-client haproxy keepalived \
	qemu-system-x86 qemu-utils debootstrap vde2 openssh-client iproute2 e2fsprogs
# kubectl (with the per-minor-version dispatcher the tests rely on) comes from Google's Cloud SDK repository.
KUBECTL_REPO := https://packages.cloud.google.com/apt
KUBECTL_KEYRING := /usr/share/keyrings/cloud.google.gpg

.PHONY: up test test-fast lint install

up: install
	$(VENV)/bin/provision image build
	$(VENV)/bin/provision up --masters 3 --nodes 2

test: install
	$(VENV)/bin/pytest

test-fast: install
	$(VENV)/bin/pytest -m "not vm"

lint: install
	$(VENV)/bin/ruff check provisioner tests bench

install: $(STAMPS)/apt $(STAMPS)/kubectl $(STAMPS)/venv

$(STAMPS)/apt: Makefile
	@mkdir -p $(STAMPS)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi
	@touch $@

$(STAMPS)/kubectl: $(STAMPS)/apt
	@if [ ! -x /usr/bin/kubectl ]; then \
		curl -fsSL $(KUBECTL_REPO)/doc/apt-key.gpg | gpg --dearmor --yes -o $(KUBECTL_KEYRING) && \
		echo "deb [signed-by=$(KUBECTL_KEYRING)] $(KUBECTL_REPO) cloud-sdk main" \
			> /etc/apt/sources.list.d/google-cloud-sdk.list && \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y kubectl; \
	fi
	@touch $@

$(STAMPS)/venv: pyproject.toml $(STAMPS)/apt
	@[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e '.[test]'
	@touch $@
