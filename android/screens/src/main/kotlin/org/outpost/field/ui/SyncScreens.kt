package org.outpost.field.ui

import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.material3.Button
import androidx.compose.material3.LinearProgressIndicator
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.runtime.collectAsState
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.rememberCoroutineScope
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import org.outpost.core.OutpostInterface
import org.outpost.field.shared.MoneyText
import org.outpost.field.shared.SummaryModel
import org.outpost.field.shared.SyncModel

/** Back on the main thread, for navigation after a background write. */
fun CoroutineScope.launchMain(block: () -> Unit) {
    launch(Dispatchers.Main) { block() }
}

/** Sync now: a progress bar, what is pending, the last sync, cancel. */
@Composable
fun SyncScreen(core: OutpostInterface, back: () -> Unit) {
    val model = remember { SyncModel(core) }
    val state by model.state.collectAsState()
    val scope = rememberCoroutineScope()
    LaunchedEffect(Unit) { scope.io { model.refresh() } }
    Screen("Sync", back) {
        Text(state.headline, style = MaterialTheme.typography.titleMedium)
        state.status?.lastSyncAt?.let { Text("Last sync: ${it.take(16)}") }
        state.status?.refused?.takeIf { it > 0uL }?.let { Text("$it records kept aside by the office") }
        if (state.running) {
            val f = state.fraction
            if (f != null) LinearProgressIndicator(progress = { f }, modifier = Modifier.fillMaxWidth())
            else LinearProgressIndicator(modifier = Modifier.fillMaxWidth())
            Text("${state.phase?.name?.lowercase().orEmpty()}: ${state.items} · ${state.bytes / 1024} KB")
            OutlinedButton(onClick = { model.cancel() }) { Text("Cancel") }
        } else {
            Button(onClick = { scope.io { model.sync() } }) { Text("Sync now") }
        }
        state.lastReport?.warnings?.forEach { Text(it) }
        ErrorLine(state.error)
    }
}

/** The day: payouts and amounts, goods, cash and stock that should be in hand. */
@Composable
fun SummaryScreen(core: OutpostInterface, back: () -> Unit) {
    val model = remember { SummaryModel(core) }
    val state by model.state.collectAsState()
    val scope = rememberCoroutineScope()
    var cash by remember { mutableStateOf("") }
    var message by remember { mutableStateOf<String?>(null) }
    LaunchedEffect(Unit) { scope.io { model.load() } }
    Screen("My day", back) {
        val day = state?.getOrNull()
        ErrorLine(state?.exceptionOrNull()?.message ?: message)
        if (day == null) return@Screen
        Text(day.day, style = MaterialTheme.typography.titleMedium)
        Text("${day.payouts} payouts: ${day.paid.joinToString { MoneyText.format(it.amountMinor, it.currency) }}")
        Text("${day.distributions} hand-outs · ${day.timesheets} timesheet days · ${day.verifications} verifications · ${day.grievances} grievances")
        day.float.forEach { f ->
            Text("Cash ${f.currency}: opening ${MoneyText.format(f.openingMinor, f.currency)}, received ${MoneyText.format(f.receivedMinor, f.currency)}, paid ${MoneyText.format(f.paidOutMinor, f.currency)}, in hand ${MoneyText.format(f.inHandMinor, f.currency)}")
        }
        day.stock.forEach { s -> Text("${s.itemCode}: ${s.inHand} in hand (${s.handedOut} handed out today)") }
        OutlinedTextField(cash, { cash = it }, label = { Text("Cash received (MWK)") }, singleLine = true)
        Button(onClick = { scope.io { message = model.receiveCash(cash, "MWK", "received at the pay point") } }) { Text("Record cash received") }
    }
}
