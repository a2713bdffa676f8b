#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-only
"""Mock BlueZ for glyco-ble's tests: a private dbus-daemon with python-dbusmock.

Started by the Rust harness (glyco_ble::testing::MockBluez) with
/usr/bin/python3 (Debian's python3-dbusmock, python3-dbus and python3-gi).
It
  1. starts its own dbus-daemon listening on the socket given by --socket
     (never the system bus), killed with this process (PR_SET_PDEATHSIG);
  2. claims org.bluez on it with dbusmock's bluez5 template (adapters,
     devices, pairing);
  3. adds what the template lacks and bluer needs: GATT services and
     characteristics (GattService1/GattCharacteristic1 objects announced with
     ObjectManager.InterfacesAdded), StartNotify/StopNotify, notifications
     as PropertiesChanged("Value") -- bluer's Characteristic::notify() path --,
     a Record Access Control Point that answers "report stored records" from
     a per-device record store, connections that really drop and fail, and
     adapter removal/return;
  4. exports a control object (CONTROL_PATH, CONTROL_IFACE) that the Rust
     harness calls over D-Bus;
  5. prints READY on stdout, then serves until its stdin closes (the harness
     dropped, or the test process died), and then takes dbus-daemon down.
"""

import argparse
import ctypes
import os
import signal
import subprocess
import sys

import dbus
import dbus.lowlevel
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

from dbusmock import mockobject

OBJECT_MANAGER_IFACE = 'org.freedesktop.DBus.ObjectManager'
ADAPTER_IFACE = 'org.bluez.Adapter1'
DEVICE_IFACE = 'org.bluez.Device1'
SERVICE_IFACE = 'org.bluez.GattService1'
CHAR_IFACE = 'org.bluez.GattCharacteristic1'
CONTROL_PATH = '/org/glyco/MockBluez'
CONTROL_IFACE = 'org.glyco.MockBluez1'

RACP_UUID = '00002a52-0000-1000-8000-00805f9b34fb'
GLUCOSE_MEASUREMENT_UUID = '00002a18-0000-1000-8000-00805f9b34fb'

# RACP op codes, operators and response codes (Glucose Service 1.0, 3.x).
RACP_REPORT_RECORDS = 0x01
RACP_REPORT_NUMBER = 0x04
RACP_NUMBER_RESPONSE = 0x05
RACP_RESPONSE_CODE = 0x06
RACP_OP_ALL = 0x01
RACP_OP_GREATER_OR_EQUAL = 0x03
RACP_FILTER_SEQUENCE = 0x01
RACP_SUCCESS = 0x01
RACP_OPCODE_NOT_SUPPORTED = 0x02
RACP_OPERATOR_NOT_SUPPORTED = 0x04
RACP_INVALID_OPERAND = 0x05
RACP_NO_RECORDS = 0x06

PR_SET_PDEATHSIG = 1

BUS_CONFIG = '''<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
'''


def die_with_parent():
    # Runs in the dbus-daemon child before exec: if this script dies (even by
    # SIGKILL), the kernel takes the bus down with it.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def byte_array(data):
    return dbus.Array([dbus.Byte(b) for b in data], signature='y')


def failed(message, name='org.bluez.Error.Failed'):
    return dbus.exceptions.DBusException(message, name=name)


class Store:
    '''State the tests drive, beside dbusmock's object table.'''

    def __init__(self):
        self.devices = {}          # device path -> DeviceState
        self.characteristics = {}  # characteristic path -> CharState
        self.hidden = {}           # adapter name -> [(path, object)] removed from the bus
        self.agents = {}           # agent object path -> the bus name that registered it


class DeviceState:
    def __init__(self, path):
        self.path = path
        self.reachable = True
        self.connect_attempts = 0
        self.stored_records = []   # glucose measurement values, oldest first
        self.racp_requests = []
        self.passkey = None        # a device that asks for a passkey when bonding


class CharState:
    def __init__(self, path, device_path, uuid):
        self.path = path
        self.device_path = device_path
        self.uuid = uuid


STORE = Store()


def emit_props(obj, iface, changed):
    obj.EmitSignal(dbus.PROPERTIES_IFACE, 'PropertiesChanged', 'sa{sv}as',
                   [iface, changed, dbus.Array([], signature='s')])


def set_props(obj, iface, changed):
    for name, value in changed.items():
        obj.props[iface][name] = value
    emit_props(obj, iface, changed)


def manager():
    return mockobject.objects['/']


def interfaces_added(path):
    obj = mockobject.objects[path]
    manager().EmitSignal(OBJECT_MANAGER_IFACE, 'InterfacesAdded', 'oa{sa{sv}}',
                         [dbus.ObjectPath(path), obj.props])


def interfaces_removed(path, obj):
    manager().EmitSignal(OBJECT_MANAGER_IFACE, 'InterfacesRemoved', 'oas',
                         [dbus.ObjectPath(path), dbus.Array(list(obj.props.keys()), signature='s')])


def device_of(path):
    '''The device object path that a service or characteristic path is under.'''
    parts = path.split('/')
    return '/'.join(parts[:5])


def characteristics_of(device_path):
    return [c for c in STORE.characteristics.values() if c.device_path == device_path]


def drop_connection(device_path):
    '''What BlueZ shows when a link goes: Connected and ServicesResolved
    false, notifications off. The GATT objects stay (bonded device cache).'''
    dev = mockobject.objects[device_path]
    for c in characteristics_of(device_path):
        obj = mockobject.objects.get(c.path)
        if obj is not None and obj.props[CHAR_IFACE]['Notifying']:
            set_props(obj, CHAR_IFACE, {'Notifying': dbus.Boolean(False, variant_level=1)})
    if dev.props[DEVICE_IFACE]['Connected']:
        set_props(dev, DEVICE_IFACE, {
            'ServicesResolved': dbus.Boolean(False, variant_level=1),
            'Connected': dbus.Boolean(False, variant_level=1),
        })


# --- Device1 methods that replace the template's (it only flips a Python
# attribute and never updates the Connected property that bluer reads).

def device_connect(dev):
    state = STORE.devices[dev.path]
    state.connect_attempts += 1
    if not state.reachable:
        # BlueZ's answer when an LE peer is out of range.
        raise failed('le-connection-abort-by-local')
    if dev.props[DEVICE_IFACE]['Connected']:
        raise failed('Already Connected', 'org.bluez.Error.AlreadyConnected')
    set_props(dev, DEVICE_IFACE, {'Connected': dbus.Boolean(True, variant_level=1)})
    set_props(dev, DEVICE_IFACE, {'ServicesResolved': dbus.Boolean(True, variant_level=1)})


def agent_seen(_conn, msg):
    '''A message filter: remembers which connection registered an agent,
    as BlueZ does, so that Pair can ask that agent.'''
    if (msg.get_interface() == 'org.bluez.AgentManager1'
            and msg.get_member() == 'RegisterAgent'):
        args = msg.get_args_list()
        if args:
            STORE.agents[str(args[0])] = msg.get_sender()
    return dbus.lowlevel.HANDLER_RESULT_NOT_YET_HANDLED


def device_pair(dev):
    '''Device1.Pair: bonds at once, or, for a device that asks for a passkey
    (RequirePasskey), asks the registered agent for it over D-Bus
    (Agent1.RequestPasskey) as BlueZ does, and fails with
    AuthenticationFailed when the agent refuses or answers wrong.'''
    props = dev.props[DEVICE_IFACE]
    if props['Paired']:
        raise failed('Already Paired', 'org.bluez.Error.AlreadyExists')
    state = STORE.devices[dev.path]
    if state.passkey is not None:
        bluez = mockobject.objects['/org/bluez']
        agent = bluez.default_agent
        owner = STORE.agents.get(str(agent)) if agent else None
        if owner is None:
            raise failed('no agent to ask for the passkey', 'org.bluez.Error.AuthenticationFailed')
        try:
            answer = dev.connection.call_blocking(
                owner, str(agent), 'org.bluez.Agent1', 'RequestPasskey', 'o',
                [dbus.ObjectPath(dev.path)], timeout=30)
        except dbus.exceptions.DBusException as e:
            raise failed('the agent refused: ' + str(e.get_dbus_name()),
                         'org.bluez.Error.AuthenticationFailed')
        if int(answer) != state.passkey:
            raise failed('Authentication Failed', 'org.bluez.Error.AuthenticationFailed')
    adapter = os.path.basename(str(props['Adapter']))
    # The template's PairDevice gives every device a phone's UUIDs; a bonded
    # health device keeps listing its own services.
    uuids = props['UUIDs']
    manager().PairDevice(adapter, str(props['Address']), 0)
    set_props(dev, DEVICE_IFACE, {'UUIDs': dbus.Array(list(uuids), signature='s', variant_level=1)})


def device_disconnect(dev):
    if not dev.props[DEVICE_IFACE]['Connected']:
        raise failed('Not Connected', 'org.bluez.Error.NotConnected')
    drop_connection(dev.path)


# --- GattCharacteristic1 methods.

def char_read_value(char, _options):
    return char.props[CHAR_IFACE]['Value']


def char_start_notify(char):
    dev = mockobject.objects[device_of(char.path)]
    if not dev.props[DEVICE_IFACE]['Connected']:
        raise failed('Not connected', 'org.bluez.Error.NotConnected')
    if not char.props[CHAR_IFACE]['Notifying']:
        set_props(char, CHAR_IFACE, {'Notifying': dbus.Boolean(True, variant_level=1)})


def char_stop_notify(char):
    if char.props[CHAR_IFACE]['Notifying']:
        set_props(char, CHAR_IFACE, {'Notifying': dbus.Boolean(False, variant_level=1)})


def notify(char_path, value):
    '''Deliver one notification/indication the way BlueZ does for clients
    that used StartNotify: update Value and emit PropertiesChanged. Returns
    False (nothing sent) when the link is down or notifications are off, as
    a real peer's notification would go nowhere.'''
    char = mockobject.objects.get(char_path)
    if char is None:
        return False
    dev = mockobject.objects[device_of(char_path)]
    if not dev.props[DEVICE_IFACE]['Connected'] or not char.props[CHAR_IFACE]['Notifying']:
        return False
    set_props(char, CHAR_IFACE, {'Value': byte_array(value)})
    return True


def sibling(char_path, uuid):
    service = char_path.rsplit('/', 1)[0]
    for c in STORE.characteristics.values():
        if c.uuid == uuid and c.path.rsplit('/', 1)[0] == service:
            return c.path
    return None


def record_sequence(record):
    # Glucose Measurement: Flags (1 octet), then Sequence Number (uint16 LE).
    return record[1] | (record[2] << 8)


def racp_answer(racp_path, request):
    '''Work out the glucometer's answer to a RACP request: the stored
    records to notify, then the RACP indication.'''
    state = STORE.devices[device_of(racp_path)]
    if len(request) < 2:
        return [], [RACP_RESPONSE_CODE, 0x00, request[0] if request else 0, RACP_INVALID_OPERAND]
    op, operator, operand = request[0], request[1], request[2:]
    records = state.stored_records
    if operator == RACP_OP_ALL and not operand:
        selected = list(records)
    elif operator == RACP_OP_GREATER_OR_EQUAL and len(operand) == 3 and operand[0] == RACP_FILTER_SEQUENCE:
        first = operand[1] | (operand[2] << 8)
        selected = [r for r in records if record_sequence(r) >= first]
    else:
        return [], [RACP_RESPONSE_CODE, 0x00, op, RACP_OPERATOR_NOT_SUPPORTED]
    if op == RACP_REPORT_NUMBER:
        n = len(selected)
        return [], [RACP_NUMBER_RESPONSE, 0x00, n & 0xFF, n >> 8]
    if op != RACP_REPORT_RECORDS:
        return [], [RACP_RESPONSE_CODE, 0x00, op, RACP_OPCODE_NOT_SUPPORTED]
    if not selected:
        return [], [RACP_RESPONSE_CODE, 0x00, op, RACP_NO_RECORDS]
    return selected, [RACP_RESPONSE_CODE, 0x00, op, RACP_SUCCESS]


def char_write_value(char, value, _options):
    value = bytes(value)
    if char.props[CHAR_IFACE]['UUID'] != RACP_UUID:
        char.props[CHAR_IFACE]['Value'] = byte_array(value)
        return
    state = STORE.devices[device_of(char.path)]
    state.racp_requests.append(value)
    if not char.props[CHAR_IFACE]['Notifying']:
        # The Glucose Service's answer when the RACP's indications are off:
        # ATT error 0xFD (Client Characteristic Configuration Descriptor
        # Improperly Configured), as BlueZ reports it.
        raise failed('Operation failed with ATT error: 0xfd')
    measurement = sibling(char.path, GLUCOSE_MEASUREMENT_UUID)
    records, response = racp_answer(char.path, value)

    # Like a real glucometer, answer after the write response: the records
    # as notifications of Glucose Measurement, then the RACP indication.
    def answer():
        for record in records:
            if measurement is not None:
                notify(measurement, record)
        notify(char.path, response)
        return False
    GLib.idle_add(answer)


class Control(dbus.service.Object):
    '''What the Rust harness drives.'''

    def __init__(self, bus, path):
        # dbusmock replaces dbus-python's method lookup for every object and
        # looks at these two first; empty, they hand over to the decorators.
        self.methods = {}
        self.interface = CONTROL_IFACE
        super().__init__(bus, path)

    @dbus.service.method(CONTROL_IFACE, in_signature='s', out_signature='o')
    def AddAdapter(self, name):
        return manager().AddAdapter(name, 'glyco-test-hub')

    @dbus.service.method(CONTROL_IFACE, in_signature='sssb', out_signature='o')
    def AddDevice(self, adapter, address, address_type, paired):
        path = manager().AddDevice(adapter, address, 'glyco-sim-' + address.replace(':', ''))
        dev = mockobject.objects[path]
        dev.props[DEVICE_IFACE]['AddressType'] = dbus.String(address_type, variant_level=1)
        dev.AddMethods(DEVICE_IFACE, [
            ('Connect', '', '', device_connect),
            ('Disconnect', '', '', device_disconnect),
            ('Pair', '', '', device_pair),
        ])
        STORE.devices[path] = DeviceState(path)
        if paired:
            manager().PairDevice(adapter, address, 0)
            set_props(dev, DEVICE_IFACE, {'Trusted': dbus.Boolean(True, variant_level=1)})
        return path

    @dbus.service.method(CONTROL_IFACE, in_signature='ou', out_signature='')
    def RequirePasskey(self, device, passkey):
        STORE.devices[str(device)].passkey = int(passkey)

    @dbus.service.method(CONTROL_IFACE, in_signature='o', out_signature='b')
    def IsPaired(self, device):
        return bool(mockobject.objects[str(device)].props[DEVICE_IFACE]['Paired'])

    @dbus.service.method(CONTROL_IFACE, in_signature='osq', out_signature='o')
    def AddService(self, device, uuid, handle):
        path = f'{device}/service{handle:04x}'
        manager().AddObject(path, SERVICE_IFACE, {
            'UUID': dbus.String(uuid, variant_level=1),
            'Primary': dbus.Boolean(True, variant_level=1),
            'Device': dbus.ObjectPath(device, variant_level=1),
            'Includes': dbus.Array([], signature='o', variant_level=1),
        }, [])
        interfaces_added(path)
        # BlueZ lists a device's resolved primary services in UUIDs.
        dev = mockobject.objects[str(device)]
        uuids = list(dev.props[DEVICE_IFACE]['UUIDs'])
        if uuid not in uuids:
            set_props(dev, DEVICE_IFACE, {'UUIDs': dbus.Array(uuids + [uuid], signature='s', variant_level=1)})
        return path

    @dbus.service.method(CONTROL_IFACE, in_signature='osqas', out_signature='o')
    def AddCharacteristic(self, service, uuid, handle, flags):
        path = f'{service}/char{handle:04x}'
        manager().AddObject(path, CHAR_IFACE, {
            'UUID': dbus.String(uuid, variant_level=1),
            'Service': dbus.ObjectPath(service, variant_level=1),
            'Value': dbus.Array([], signature='y', variant_level=1),
            'Notifying': dbus.Boolean(False, variant_level=1),
            'Flags': dbus.Array(flags, signature='s', variant_level=1),
            'MTU': dbus.UInt16(247, variant_level=1),
        }, [
            ('ReadValue', 'a{sv}', 'ay', char_read_value),
            ('WriteValue', 'aya{sv}', '', char_write_value),
            ('StartNotify', '', '', char_start_notify),
            ('StopNotify', '', '', char_stop_notify),
        ])
        STORE.characteristics[path] = CharState(path, device_of(path), str(uuid))
        interfaces_added(path)
        return path

    @dbus.service.method(CONTROL_IFACE, in_signature='oay', out_signature='')
    def SetValue(self, characteristic, value):
        '''What a read returns (a characteristic the device keeps, such as a
        CGM's session start time).'''
        char = mockobject.objects[str(characteristic)]
        char.props[CHAR_IFACE]['Value'] = byte_array(bytes(value))

    @dbus.service.method(CONTROL_IFACE, in_signature='oay', out_signature='b')
    def Notify(self, characteristic, value):
        return notify(str(characteristic), bytes(value))

    @dbus.service.method(CONTROL_IFACE, in_signature='o', out_signature='b')
    def IsNotifying(self, characteristic):
        char = mockobject.objects.get(str(characteristic))
        return bool(char is not None and char.props[CHAR_IFACE]['Notifying'])

    @dbus.service.method(CONTROL_IFACE, in_signature='oaay', out_signature='')
    def SetStoredRecords(self, device, records):
        STORE.devices[str(device)].stored_records = [bytes(r) for r in records]

    @dbus.service.method(CONTROL_IFACE, in_signature='o', out_signature='aay')
    def RacpRequests(self, device):
        return [byte_array(r) for r in STORE.devices[str(device)].racp_requests]

    @dbus.service.method(CONTROL_IFACE, in_signature='o', out_signature='as')
    def ListedServices(self, device):
        return [str(u) for u in mockobject.objects[str(device)].props[DEVICE_IFACE]['UUIDs']]

    @dbus.service.method(CONTROL_IFACE, in_signature='oas', out_signature='')
    def SetListedServices(self, device, uuids):
        '''BlueZ changes the services it lists for a device (Device1.UUIDs):
        resolved at last, or changed by the device's firmware.'''
        dev = mockobject.objects[str(device)]
        set_props(dev, DEVICE_IFACE, {'UUIDs': dbus.Array([str(u) for u in uuids], signature='s', variant_level=1)})

    @dbus.service.method(CONTROL_IFACE, in_signature='ob', out_signature='')
    def SetReachable(self, device, reachable):
        state = STORE.devices[str(device)]
        state.reachable = bool(reachable)
        if not reachable:
            drop_connection(str(device))

    @dbus.service.method(CONTROL_IFACE, in_signature='on', out_signature='')
    def SetRssi(self, device, dbm):
        '''The adapter heard the device at this strength (Device1.RSSI).'''
        set_props(mockobject.objects[str(device)], DEVICE_IFACE, {'RSSI': dbus.Int16(dbm)})

    @dbus.service.method(CONTROL_IFACE, in_signature='o', out_signature='u')
    def ConnectAttempts(self, device):
        return STORE.devices[str(device)].connect_attempts

    @dbus.service.method(CONTROL_IFACE, in_signature='o', out_signature='b')
    def IsConnected(self, device):
        return bool(mockobject.objects[str(device)].props[DEVICE_IFACE]['Connected'])

    @dbus.service.method(CONTROL_IFACE, in_signature='s', out_signature='')
    def RemoveAdapter(self, name):
        '''The controller goes away (USB unplugged, firmware crash): BlueZ
        removes the adapter and every object under it, deepest first.'''
        prefix = '/org/bluez/' + name
        paths = sorted((p for p in mockobject.objects if p == prefix or p.startswith(prefix + '/')),
                       key=len, reverse=True)
        # Their state must read "disconnected" when they return; no signals
        # for objects that are going away anyway.
        for path in paths:
            props = mockobject.objects[path].props
            if CHAR_IFACE in props:
                props[CHAR_IFACE]['Notifying'] = dbus.Boolean(False, variant_level=1)
            if DEVICE_IFACE in props:
                props[DEVICE_IFACE]['Connected'] = dbus.Boolean(False, variant_level=1)
                props[DEVICE_IFACE]['ServicesResolved'] = dbus.Boolean(False, variant_level=1)
        hidden = []
        for path in paths:
            obj = mockobject.objects.pop(path)
            obj.remove_from_connection()
            interfaces_removed(path, obj)
            hidden.append((path, obj))
        STORE.hidden[name] = hidden

    @dbus.service.method(CONTROL_IFACE, in_signature='s', out_signature='')
    def RestoreAdapter(self, name):
        '''The controller comes back: BlueZ re-creates the adapter and the
        bonded devices from its storage, shallowest first.'''
        bus = manager().connection
        for path, obj in sorted(STORE.hidden.pop(name), key=lambda item: len(item[0])):
            obj.add_to_connection(bus, path)
            mockobject.objects[path] = obj
            interfaces_added(path)


def start_bus(socket_path, config_path, log):
    with open(config_path, 'w', encoding='utf-8') as f:
        f.write(BUS_CONFIG.format(socket=socket_path))
    daemon = subprocess.Popen(
        ['dbus-daemon', '--nofork', '--nopidfile', '--print-address=1',
         '--config-file=' + config_path],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=log, text=True,
        preexec_fn=die_with_parent)
    address = daemon.stdout.readline().strip()
    if not address:
        daemon.kill()
        sys.exit('dbus-daemon did not start')
    return daemon, address


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--socket', required=True, help='unix socket path for the private bus')
    parser.add_argument('--log', required=True, help='dbusmock call log file')
    args = parser.parse_args()

    with open(args.log + '.dbus-daemon', 'w', encoding='utf-8') as daemon_log:
        daemon, address = start_bus(args.socket, args.socket + '.conf', daemon_log)

    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(address)
    bus_name = dbus.service.BusName('org.bluez', bus, allow_replacement=True,
                                    replace_existing=True, do_not_queue=True)
    main_object = mockobject.DBusMockObject(bus_name, '/', OBJECT_MANAGER_IFACE, {},
                                            args.log, True)
    main_object.AddTemplate('bluez5', None)
    mockobject.objects['/'] = main_object
    Control(bus, CONTROL_PATH)
    bus.add_message_filter(agent_seen)

    loop = GLib.MainLoop()

    def stdin_closed(_fd, _condition):
        loop.quit()
        return False
    GLib.io_add_watch(sys.stdin.fileno(), GLib.IO_HUP | GLib.IO_IN | GLib.IO_ERR, stdin_closed)

    print('READY', address, flush=True)
    loop.run()

    daemon.terminate()
    try:
        daemon.wait(timeout=5)
    except subprocess.TimeoutExpired:
        daemon.kill()
    try:
        os.unlink(args.socket)
    except OSError:
        pass


if __name__ == '__main__':
    main()
